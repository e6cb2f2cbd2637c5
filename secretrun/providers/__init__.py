"""The provider registry: a provider type name to its class, imported lazily.

Providers register through the ``secretrun.providers`` entry-point group, the
built-ins exactly as a third-party package would (see ``pyproject.toml``).
``BUILTIN`` repeats the built-ins' entry points so that the common case never
scans installed distributions: reading every ``entry_points.txt`` costs more
than the rest of secretrun's start-up. A test keeps the two tables equal.
Unknown names fall through to the entry points, so plugins work unchanged.

A module is imported only when a manifest uses its type (SPEC §5), so a
manifest without Vault never imports hvac.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Dict, Tuple, Type

from ..errors import ProviderConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .base import Provider

GROUP = "secretrun.providers"

BUILTIN: Dict[str, str] = {
    "env": "secretrun.providers.env:EnvProvider",
    "dotenv": "secretrun.providers.dotenv:DotenvProvider",
    "file": "secretrun.providers.file:FileProvider",
    "vault": "secretrun.providers.vault:VaultProvider",
    "aws-secretsmanager": "secretrun.providers.aws_secretsmanager:SecretsManagerProvider",
    "aws-ssm": "secretrun.providers.aws_ssm:SsmProvider",
    "gcp-secretmanager": "secretrun.providers.gcp_secretmanager:GcpSecretManagerProvider",
    "azure-keyvault": "secretrun.providers.azure_keyvault:AzureKeyVaultProvider",
    "kubernetes": "secretrun.providers.kubernetes:KubernetesProvider",
}

# The extra that installs each built-in's SDK, for the "pip install" hint.
EXTRAS: Dict[str, str] = {
    "vault": "vault",
    "aws-secretsmanager": "aws",
    "aws-ssm": "aws",
    "gcp-secretmanager": "gcp",
    "azure-keyvault": "azure",
    "kubernetes": "kubernetes",
}

_loaded: Dict[str, "Type[Provider]"] = {}


def _plugin_entry_points() -> Dict[str, str]:
    from importlib.metadata import entry_points

    found: Dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def known_types(include_plugins: bool = False) -> Tuple[str, ...]:
    names = set(BUILTIN)
    if include_plugins:
        names |= set(_plugin_entry_points())
    return tuple(sorted(names))


def is_known(type_name: str) -> bool:
    return type_name in BUILTIN or type_name in _plugin_entry_points()


def load(type_name: str) -> "Type[Provider]":
    """The class for a provider type. Raises ``ProviderConfigError`` for an
    unknown type (listing the valid ones) or a missing SDK (naming the extra)."""
    if type_name in _loaded:
        return _loaded[type_name]
    target = BUILTIN.get(type_name) or _plugin_entry_points().get(type_name)
    if target is None:
        raise ProviderConfigError(
            f"unknown provider type {type_name!r}. Valid types: {', '.join(known_types(True))}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = EXTRAS.get(type_name)
        hint = f"pip install 'secretrun-cli[{extra}]'" if extra else "install the package that provides it"
        raise ProviderConfigError(
            f"provider type {type_name!r} needs a library that is not installed "
            f"({exc.name or exc}): {hint}") from None
    cls = getattr(module, attr)
    _loaded[type_name] = cls
    return cls
