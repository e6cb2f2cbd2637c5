"""The one place Key Vault and azure-identity failures become ours."""

from __future__ import annotations

import json
import re
import socket
import ssl
from typing import Any, List, Optional, Tuple

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from ...errors import Denied, InvalidSecret, NotFound, ProviderError, Throttled, Unavailable
from ..base import SecretId


def _what(sid: SecretId) -> str:
    return f"secret '{sid.path}'" + (f" version {sid.version}" if sid.version else "")


def _translate(exc: BaseException, what: str, where: str, writing: bool = False) -> ProviderError:
    """Our error for an SDK failure. Messages are built from the status, Key
    Vault's error codes and what was asked, never from the SDK's message, which
    may quote a request or a response; only azure-identity's reasons for a
    failed sign-in are passed on (see ``_auth_reason``)."""
    if isinstance(exc, ProviderError):
        return exc
    response = getattr(exc, "response", None)
    request = getattr(response, "request", None)
    if isinstance(exc, HttpResponseError) and exc.status_code and str(getattr(request, "url", "")).startswith(where):
        return _vault_refusal(exc, exc.status_code, what, where, writing)
    transient = _network_reason(exc)
    if isinstance(exc, ClientAuthenticationError):
        if transient:
            return Unavailable(f"the sign-in authority for {where} is unavailable ({transient})")
        return Denied(f"could not sign in to {where}: {_auth_reason(exc)}")
    if transient:
        return Unavailable(f"cannot reach {where} for {what}: {transient}")
    if isinstance(exc, ValueError) and "challenge resource" in str(exc):
        return Denied(f"{where} asked for a token for another domain than its own, refused: set "
                      f"verify_challenge_resource = false only for private endpoints and tests")
    status = getattr(exc, "status_code", None)
    why = f"HTTP {status}" if isinstance(status, int) and status else "the Azure SDK failed unexpectedly"
    return ProviderError(f"reading {what} from {where} failed ({why})")


def _vault_refusal(exc: HttpResponseError, status: int, what: str, where: str, writing: bool) -> ProviderError:
    code, inner = _error_codes(exc)
    label = f"HTTP {status}" + (f" {code}" if code else "") + (f"/{inner}" if inner else "")
    if status == 404:
        return NotFound(f"{what} not found in {where}")
    if status == 403 and "SecretDisabled" in (code, inner):
        return InvalidSecret(f"{what} is disabled in {where}")
    if status == 403:
        verb = "set" if writing else "get"
        return Denied(f"{where} refused access to {what} ({label}: the identity lacks secrets/{verb} permission)")
    if status == 401:
        return Denied(f"{where} refused the token presented for {what} ({label})")
    if status == 429:
        return Throttled(f"{where} throttled {what} ({label})", retry_after=_retry_after(exc))
    if status >= 500:
        return Unavailable(f"{where} could not serve {what} ({label})", retry_after=_retry_after(exc))
    return InvalidSecret(f"{where} refused the request for {what} ({label})")


def _retry_after(exc: HttpResponseError) -> Optional[float]:
    """Key Vault's ``Retry-After`` in seconds (throttling sends one); an
    HTTP-date or garbage counts as none."""
    try:
        seconds = float(getattr(exc.response, "headers", {}).get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < 3600 else None


def _error_codes(exc: HttpResponseError) -> Tuple[Optional[str], Optional[str]]:
    """Key Vault's ``error.code`` and ``error.innererror.code``; Entra's ``error``."""
    if exc.response is None:
        return None, None
    try:
        body = json.loads(exc.response.text())
    except Exception:  # noqa: BLE001 - not JSON: no codes
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):   # OAuth2: {"error": "invalid_client", ...}
        return error, None
    if not isinstance(error, dict):
        return None, None
    inner = error.get("innererror")
    code = error.get("code")
    return (code if isinstance(code, str) else None,
            inner.get("code") if isinstance(inner, dict) and isinstance(inner.get("code"), str) else None)


# MSAL reports the token endpoint's own 429 / 5xx only in this message (and
# throttles the endpoint for Retry-After, default 5 s, so our retries may be
# answered from its cache: the outage then lasts as long as the throttle).
_MSAL_HTTP_ERROR = re.compile(r"HTTP Error: (429|5\d\d)\b")


def _network_reason(exc: BaseException) -> Optional[str]:
    """Why a request failed transiently (no connection, a timeout, a throttled
    or failing authority), from the exception chain; None if it did not."""
    seen = 0
    stack: List[Any] = [exc]
    reason: Optional[str] = None
    while stack and seen < 20:
        item = stack.pop()
        seen += 1
        if isinstance(item, ssl.SSLCertVerificationError):
            return "TLS certificate not trusted, see the ca_cert option"
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, socket.gaierror):
            return "its host name does not resolve"
        if isinstance(item, ConnectionResetError):
            return "connection reset"
        if isinstance(item, (TimeoutError, socket.timeout)) or "Timeout" in type(item).__name__:
            reason = reason or "timed out"
        elif type(item).__name__ in ("ServiceRequestError", "ServiceResponseError", "ConnectionError",
                                     "NewConnectionError", "ProtocolError", "SSLError",
                                     "RemoteDisconnected", "ConnectionResetError"):
            reason = reason or "connection failed"
        elif type(item).__name__ == "MsalServiceError":
            match = _MSAL_HTTP_ERROR.search(str(item))
            if match:
                reason = reason or f"HTTP {match.group(1)}"
        for attr in ("__cause__", "__context__", "inner_exception", "reason"):
            nested = getattr(item, attr, None)
            if isinstance(nested, BaseException):
                stack.append(nested)
        stack.extend(arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException))
    return reason


def _auth_reason(exc: ClientAuthenticationError) -> str:
    """What azure-identity says went wrong, compacted. Its messages hold Entra's
    error descriptions and the chain's attempts, never a token or a secret."""
    lines = [line.strip() for line in str(getattr(exc, "message", None) or exc).splitlines()]
    lines = [line for line in lines if line and "aka.ms" not in line and not line.startswith("To mitigate")]
    text = "; ".join(lines[:8])
    return text[:600] + ("..." if len(text) > 600 else "")
