"""Vault's options and the environment it reads them from: the defaults an
existing Vault or OpenBao user already has (``VAULT_ADDR``, ``VAULT_TOKEN``,
``VAULT_CACERT``..., and their ``BAO_`` twins), ``auth = { method = ... }``
validated into an ``AuthConfig``, proxies as the Vault CLI reads them, and
durations. No SDK here."""

from __future__ import annotations

import urllib.parse
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed

from ..base import OptionReader, ProviderContext
from ..options import VAULT_AUTH_KEYS as _METHOD_KEYS
from ..options import VAULT_AUTH_METHODS as METHODS
from ..options import vault_auth_problems

DEFAULT_ADDRESS = "https://127.0.0.1:8200"     # the Vault CLI's default
K8S_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
_TRUE = ("1", "t", "true", "yes", "on")        # Go's ParseBool, as the Vault CLI reads VAULT_SKIP_VERIFY


class AuthConfig(NamedTuple):
    """``auth = { method = ... }``, validated. Only the keys of ``method``
    are set; ``token_env`` names the variables a token may come from."""

    method: str = "token"
    mount: str = ""
    role: Optional[str] = None
    role_id: Optional[str] = None
    role_id_file: Optional[str] = None
    secret_id: Optional[str] = None
    secret_id_file: Optional[str] = None
    token: Optional[str] = None
    token_file: Optional[str] = None
    jwt: Optional[str] = None
    jwt_file: Optional[str] = None
    home_token_file: Optional[str] = None   # ~/.vault-token, the CLI's token helper file


def _read_auth(ctx: ProviderContext, opts: OptionReader, table: Mapping[str, Any]) -> Tuple[AuthConfig, Tuple[str, ...]]:
    """Validate ``auth``; problems go to ``opts``. Returns the config and the
    environment variables a token may be taken from."""
    problems = vault_auth_problems(table)
    for problem in problems:
        opts.error(problem)
    method = table.get("method", "token")
    if method not in METHODS:
        return AuthConfig(), ()
    values: Dict[str, Optional[str]] = {key: value for key, value in table.items()
                                        if key in _METHOD_KEYS[method] and isinstance(value, str) and value}
    for key in ("role_id_file", "secret_id_file", "token_file", "jwt_file"):
        path = values.get(key)
        if path:
            values[key] = ctx.path(path)

    def one_of(a: str, b: str, required: bool) -> None:
        if values.get(a) and values.get(b):
            opts.error(f"'auth.{a}' and 'auth.{b}' cannot both be set")
        elif required and not values.get(a) and not values.get(b):
            opts.error(f"auth method {method!r} needs 'auth.{a}' or 'auth.{b}'")

    consumed: Tuple[str, ...] = ()
    home_file = None
    if method == "token":
        one_of("token", "token_file", False)
        if not values.get("token") and not values.get("token_file"):
            consumed = tuple(n for n in ("VAULT_TOKEN", "BAO_TOKEN") if ctx.environ.get(n))
            home = ctx.environ.get("HOME")
            home_file = f"{home.rstrip('/')}/.vault-token" if home else None
    elif method == "approle":
        one_of("role_id", "role_id_file", True)
        one_of("secret_id", "secret_id_file", False)
    elif method == "kubernetes":
        if not values.get("role"):
            opts.error("auth method 'kubernetes' needs 'auth.role'")
        values.setdefault("token_file", K8S_TOKEN_FILE)
    elif method == "jwt":
        one_of("jwt", "jwt_file", True)
    mount = (values.pop("mount", None) or ("" if method == "token" else method)).strip("/")
    return AuthConfig(method=method, mount=mount, home_token_file=home_file, **values), consumed


def _env(environ: Mapping[str, str], *names: str) -> Optional[str]:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


def _proxies(environ: Mapping[str, str], address: str) -> Dict[str, str]:
    """Proxies as Go's ProxyFromEnvironment reads them (which the Vault CLI
    uses), from ``environ``; VAULT_HTTP_PROXY wins over the generic ones."""
    host = urllib.parse.urlsplit(address).hostname or ""
    explicit = _env(environ, "VAULT_HTTP_PROXY", "VAULT_PROXY_ADDR", "BAO_HTTP_PROXY", "BAO_PROXY_ADDR")
    if explicit:
        return {"http": explicit, "https": explicit}
    no_proxy = _env(environ, "no_proxy", "NO_PROXY")
    if no_proxy and proxy_bypass_environment(host, {"no": no_proxy}):
        return {}
    out = {}
    for scheme in ("http", "https"):
        value = _env(environ, f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
        if value:
            out[scheme] = value
    return out


def _seconds(text: Optional[str], opts: OptionReader, key: str, default: float) -> float:
    from ...units import parse_duration

    raw = (text or "").strip()
    # A bare number in a string is seconds here, as Vault's own clients read it.
    seconds = parse_duration(float(raw) if raw.replace(".", "", 1).isdigit() else raw)
    if seconds is not None:
        return seconds
    opts.error(f"'{key}' must be a number of seconds or a duration such as \"5s\", not {text!r}")
    return default
