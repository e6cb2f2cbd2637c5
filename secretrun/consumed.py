"""Login credentials the stores read from secretrun's own environment, and
where the manifest hands them to the command anyway (the trust boundary:
README "Security").

A store's login may read ``VAULT_TOKEN``, ``AZURE_CLIENT_SECRET``, or an
``${env:X}`` in a provider option. Each such variable is recorded by the
exact name read (an env-type provider's ``prefix`` included), kept from the
command unless ``[env]`` names it, and reported by ``check`` when the
manifest passes it on.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from .template import refs


class ConsumedCredentials:
    """A part of ``resolver.Session``: it reads the session's providers,
    manifest (its ``-e`` extras included) and what its option rendering recorded."""

    providers: Dict[str, Any]
    manifest: Any
    _consumed_by: Dict[str, str]

    def consumed_env(self) -> Tuple[str, ...]:
        """Variables of our environment the stores read for their own login
        (VAULT_TOKEN, ``${env:X}`` in provider options...): kept from the
        child unless the manifest sets them."""
        return tuple(self.consumed_by())

    def env_prefixes(self) -> Dict[str, str]:
        """Each env-type provider (the built-in ``env`` included) and its prefix."""
        out = {"env": ""} if "env" not in self.manifest.providers else {}
        for pname, config in self.manifest.providers.items():
            if config.type == "env":
                provider = self.providers.get(pname)
                out[pname] = getattr(provider, "prefix", None) or str(config.options.get("prefix", "") or "")
        return out

    def consumed_by(self) -> Dict[str, str]:
        """Each consumed variable and what read it (an option, a provider's login)."""
        out = dict(self._consumed_by)
        for pname, provider in self.providers.items():
            for variable in provider.consumed_env():
                out.setdefault(variable, f"the {provider.type_name} provider '{pname}' (its login)")
        return out

    def passed_on(self) -> List[Tuple[str, str, str]]:
        """(variable, consumed credential, what read it) for every credential
        the manifest hands the command anyway: ``[env]``/``-e`` setting it by
        name, or reading it through an env-type provider."""
        consumed = self.consumed_by()
        prefixes = self.env_prefixes()
        out = []
        entries = [(n, v.template) for n, v in self.manifest.env.items()] + list(self.manifest.extras.items())
        for name, tpl in entries:
            if name in consumed:
                out.append((name, name, consumed[name]))
            for ref in refs(tpl):
                if ref.provider in prefixes:
                    source = prefixes[ref.provider] + ref.path
                    if source in consumed and source != name:
                        out.append((name, source, consumed[source]))
        return out
