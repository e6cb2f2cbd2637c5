"""What each built-in provider type accepts as options, readable without its SDK.

A provider module imports its store's SDK (hvac, boto3, the Google and Azure
clients) when it is loaded, which costs up to a second. The manifest loader
and ``secretrun check --offline`` need to refuse an unknown or mistyped option
without paying that, and without a store to talk to: this table is what they
check against. Each provider's ``from_config`` stays the authority for a
provider it builds (it also checks what needs the file system or the
environment, such as a CA file that must exist); a test keeps the keys each
``from_config`` reads equal to the keys listed here.

A third-party type is not listed: its options are checked when it is built,
or, offline, by its class's ``check_options(options)`` when it has one.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ..errors import did_you_mean


class Opt(NamedTuple):
    """One option: its kind (``str``, ``bool``, ``number``, ``table``,
    ``list``, ``duration``: a number of seconds or a text like ``"5s"``), and
    for text the values it may take or the prefixes it must start with."""

    kind: str = "str"
    choices: Tuple[str, ...] = ()
    prefixes: Tuple[str, ...] = ()


_AWS = {"region": Opt(), "profile": Opt(), "endpoint_url": Opt(prefixes=("http://", "https://")),
        "sts_endpoint_url": Opt(prefixes=("http://", "https://")), "role_arn": Opt(prefixes=("arn:",)),
        "external_id": Opt(), "role_session_name": Opt()}

VAULT_AUTH_METHODS = ("token", "approle", "kubernetes", "jwt")
# Keys each Vault login method takes, besides ``method``.
VAULT_AUTH_KEYS: Dict[str, Tuple[str, ...]] = {
    "token": ("token", "token_file"),
    "approle": ("role_id", "role_id_file", "secret_id", "secret_id_file", "mount"),
    "kubernetes": ("role", "token_file", "mount"),
    "jwt": ("role", "jwt", "jwt_file", "mount"),
}
FILE_TRIMS = ("newline", "none", "whitespace")
AZURE_CREDENTIALS = ("default", "environment", "workload-identity", "managed-identity", "azure-cli")

SPECS: Dict[str, Dict[str, Opt]] = {
    "env": {"prefix": Opt()},
    "dotenv": {"path": Opt()},
    "file": {"path": Opt(), "trim": Opt(choices=FILE_TRIMS)},
    "vault": {"address": Opt(prefixes=("http://", "https://")), "namespace": Opt(), "ca_cert": Opt(),
              "tls_skip_verify": Opt("bool"), "client_cert": Opt(), "client_key": Opt(),
              "timeout": Opt("duration"), "auth": Opt("table")},
    "aws-secretsmanager": dict(_AWS),
    "aws-ssm": dict(_AWS),
    "gcp-secretmanager": {"project": Opt(), "location": Opt(), "endpoint": Opt(), "insecure": Opt("bool")},
    "kubernetes": {"kind": Opt(choices=("secret", "configmap")), "namespace": Opt(), "serviceaccount_dir": Opt(),
                   "kubeconfig": Opt(), "context": Opt(), "timeout": Opt("duration")},
    "azure-keyvault": {"vault_url": Opt(prefixes=("https://",)), "vault": Opt(),
                       "credential": Opt(choices=AZURE_CREDENTIALS),
                       "ca_cert": Opt(), "authority_host": Opt(prefixes=("https://",)), "tenant_id": Opt(),
                       "client_id": Opt(), "disable_instance_discovery": Opt("bool"),
                       "verify_challenge_resource": Opt("bool"), "api_version": Opt()},
}

_KIND_NAMES = {"str": "a string", "bool": "true or false", "number": "a number", "table": "a table",
               "list": "a list", "duration": "a number of seconds or a duration such as \"5s\""}


def is_templated(value: Any) -> bool:
    """A string holding a reference is only known after resolution."""
    return isinstance(value, str) and "${" in value


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "str":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "table":
        return isinstance(value, Mapping)
    if kind == "list":
        return isinstance(value, list)
    if kind == "duration":
        if isinstance(value, (int, float)):
            return value > 0
        from ..units import parse_duration

        return isinstance(value, str) and bool(parse_duration(value))
    return True


def check_options(ptype: str, options: Mapping[str, Any]) -> Optional[List[str]]:
    """Every problem with a built-in provider's options (unknown keys, wrong
    types, values outside a fixed set), worded as its ``from_config`` words
    them; ``None`` for a type this table does not know (a plugin)."""
    spec = SPECS.get(ptype)
    if spec is None:
        return None
    errors: List[str] = []
    for key, value in options.items():
        if key == "type":
            continue
        opt = spec.get(key)
        if opt is None:
            errors.append(f"unknown option '{key}'{did_you_mean(key, spec)}")
            continue
        if is_templated(value):
            continue
        if not _type_ok(value, opt.kind):
            errors.append(f"'{key}' must be {_KIND_NAMES[opt.kind]}")
        elif opt.choices and value not in opt.choices:
            errors.append(f"'{key}' must be one of {', '.join(opt.choices)}, not {value!r}")
        elif opt.prefixes and not value.startswith(opt.prefixes):
            errors.append(f"'{key}' must start with {' or '.join(opt.prefixes)}, not {value!r}")
    if ptype == "vault" and isinstance(options.get("auth"), Mapping):
        errors += vault_auth_problems(options["auth"])
    if ptype == "azure-keyvault" and options.get("vault_url") and options.get("vault"):
        errors.append("set 'vault_url' or 'vault', not both")
    return errors


def vault_auth_problems(table: Mapping[str, Any]) -> List[str]:
    """What is wrong with a Vault ``auth`` table's method and keys (the
    provider adds the rules between keys)."""
    method = table.get("method", "token")
    if method not in VAULT_AUTH_METHODS:
        return [f"'auth.method' must be one of {', '.join(VAULT_AUTH_METHODS)}, not {method!r}"]
    allowed = VAULT_AUTH_KEYS[method]
    errors = []
    for key, value in table.items():
        if key == "method":
            continue
        if key not in allowed:
            errors.append(f"unknown option 'auth.{key}' for method {method!r} (it takes {', '.join(allowed)})")
        elif not isinstance(value, str) or not value:
            errors.append(f"'auth.{key}' must be a non-empty string")
    return errors


# What an offline check of each built-in type cannot tell without its store.
OFFLINE_LIMITS = ("whether each store is reachable and the credentials are accepted",
                  "whether each secret, version and field exists, and its value's validity",
                  "files an option names (CA certificates, token files), which may exist only where it runs")
