"""Which Azure credential signs in: ``credential`` and the environment
(``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``...) read
from ``ctx.environ``, with the variables consumed so the child does not
inherit them."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from azure.identity import (
    AzureCliCredential,
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)

from ..base import OptionReader, ProviderContext
from .transport import _transport_options


class _Login(NamedTuple):
    """The settings a credential is built from, options over environment."""

    kind: str
    tenant_id: Optional[str]
    client_id: Optional[str]
    authority: Optional[str]
    disable_instance_discovery: bool
    ca_cert: Optional[str]


def _credential(ctx: ProviderContext, login: _Login, opts: OptionReader) -> Tuple[Any, Tuple[str, ...]]:
    """The credential ``login`` asks for, and the variables it consumed. Missing
    settings are reported through ``opts``; returns ``(None, ())`` then."""
    env = ctx.environ
    # Token requests get no SDK retries either: the resolver retries Unavailable.
    common: Dict[str, Any] = dict(_transport_options(ctx, login.ca_cert), retry_total=0)
    if login.authority:
        common["authority"] = login.authority
    entra = dict(common, disable_instance_discovery=login.disable_instance_discovery)
    has_workload = bool(env.get("AZURE_FEDERATED_TOKEN_FILE"))
    kind = login.kind
    if kind == "default":
        # As DefaultAzureCredential does: a half-configured one is skipped.
        named = bool(login.tenant_id and login.client_id)
        has_secret = bool(env.get("AZURE_CLIENT_SECRET") or env.get("AZURE_CLIENT_CERTIFICATE_PATH"))
        kind = ("environment" if named and has_secret else
                "workload-identity" if named and has_workload else "default")
    try:
        if kind == "environment":
            return _service_principal(env, login, entra, opts)
        if kind == "workload-identity":
            missing = _missing(login, has_workload, "AZURE_FEDERATED_TOKEN_FILE")
            if missing:
                opts.error(f"credential 'workload-identity' needs {missing}")
                return None, ()
            return WorkloadIdentityCredential(tenant_id=login.tenant_id, client_id=login.client_id,
                                              token_file_path=env["AZURE_FEDERATED_TOKEN_FILE"], **entra), ()
        if kind == "managed-identity":
            return ManagedIdentityCredential(client_id=login.client_id, **_transport_options(ctx, login.ca_cert)), ()
        if kind == "azure-cli":
            return AzureCliCredential(tenant_id=login.tenant_id or "", process_timeout=int(ctx.timeout) or 1), ()
        # The rest of DefaultAzureCredential's chain. Its environment and workload
        # credentials read os.environ, and were found not configured in ours.
        extra: Dict[str, Any] = {}
        if login.client_id:
            extra["managed_identity_client_id"] = login.client_id
        if login.authority:
            extra["authority"] = login.authority
        if login.ca_cert:
            extra["connection_verify"] = login.ca_cert
        return DefaultAzureCredential(exclude_environment_credential=True,
                                      exclude_workload_identity_credential=True,
                                      process_timeout=int(ctx.timeout) or 1, **extra), ()
    except (ValueError, TypeError, OSError) as exc:
        # Construction errors name settings (a malformed tenant, an unreadable
        # certificate file); only their first line, never a password.
        opts.error(f"credential {kind!r} cannot be built: {_first_line(exc)}")
        return None, ()


def _service_principal(env: Mapping[str, str], login: _Login, entra: Dict[str, Any],
                       opts: OptionReader) -> Tuple[Any, Tuple[str, ...]]:
    secret = env.get("AZURE_CLIENT_SECRET")
    cert = env.get("AZURE_CLIENT_CERTIFICATE_PATH")
    tenant_id, client_id = login.tenant_id, login.client_id
    missing = _missing(login, bool(secret or cert), "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH")
    if missing or not tenant_id or not client_id:    # missing names what is not set
        opts.error(f"credential 'environment' needs {missing}")
        return None, ()
    if secret:
        return ClientSecretCredential(tenant_id, client_id, secret, **entra), ("AZURE_CLIENT_SECRET",)
    password = env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD")
    send_chain = env.get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "").lower() in ("1", "true")
    credential = CertificateCredential(tenant_id, client_id, cert, password=password or None,
                                       send_certificate_chain=send_chain, **entra)
    return credential, (("AZURE_CLIENT_CERTIFICATE_PASSWORD",) if password else ())


def _missing(login: _Login, have_key: bool, key_name: str) -> str:
    missing: List[str] = []
    if not login.tenant_id:
        missing.append("AZURE_TENANT_ID (or 'tenant_id')")
    if not login.client_id:
        missing.append("AZURE_CLIENT_ID (or 'client_id')")
    if not have_key:
        missing.append(key_name)
    return ", ".join(missing)



def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "no reason given")[:200]
