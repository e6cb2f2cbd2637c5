"""Vault's error translation: every hvac and requests error becomes one of
ours here, by status code or exception type. Messages are built from the
path, the operation and the server address: Vault's own error text is never
copied, since an error body may echo what was sent."""

from __future__ import annotations

import socket
from typing import Any, Dict, Optional, Tuple

import hvac
import hvac.exceptions
import requests

from ...errors import Denied, InvalidSecret, NotFound, ProviderError, Throttled, Unavailable


class _TlsError(Unavailable):
    """The server's certificate was refused: exit 69 like any unreachable
    store, but retrying cannot help, so the core does not."""

    retryable = False


# --- the one error table ---------------------------------------------------------------

# Vault's statuses (https://developer.hashicorp.com/vault/api-docs#http-status-codes).
_STATUS: Dict[int, Tuple[type, str]] = {
    400: (InvalidSecret, "request refused (HTTP 400)"),
    401: (Denied, "not authenticated (HTTP 401)"),
    403: (Denied, "permission denied (HTTP 403)"),
    404: (NotFound, "no such secret (HTTP 404)"),
    405: (InvalidSecret, "this path cannot be read (HTTP 405)"),
    412: (Unavailable, "server not yet consistent (HTTP 412)"),
    429: (Throttled, "rate limit exceeded (HTTP 429)"),   # a rate-limit quota
    500: (Unavailable, "server error (HTTP 500)"),
    501: (Unavailable, "server not initialized (HTTP 501)"),
    502: (Unavailable, "bad gateway (HTTP 502)"),
    503: (Unavailable, "server sealed or in standby (HTTP 503)"),
    504: (Unavailable, "gateway timeout (HTTP 504)"),
}
# hvac raises one class per status, and drops the status itself.
_HVAC_STATUS: Dict[type, int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def _from_status(status: int, body: Any, what: str, where: str, login: bool = False,
                 retry_after: Optional[float] = None) -> ProviderError:
    """Map an HTTP error status to ours. Of the body, only KV v2's deletion
    metadata and the word "sealed" are looked at; its text is never copied.
    ``retry_after`` (a 429's Retry-After) rides on ``Unavailable``."""
    cls: Any
    cls, reason = _STATUS.get(status) or ((InvalidSecret, f"request refused (HTTP {status})") if 400 <= status < 500
                                          else (Unavailable, f"unexpected answer (HTTP {status or '?'})"))
    body = body if isinstance(body, dict) else {}
    if login and not issubclass(cls, Unavailable):
        # Vault answers a bad role, secret id or JWT with 400, an unknown
        # auth mount with 403 or 405: all mean "cannot log in".
        return Denied(f"{what}: the server refused the credentials, {reason} ({where})")
    if status == 503 and "sealed" in " ".join(map(str, body.get("errors") or [])).lower():
        reason = "server is sealed (HTTP 503)"
    if cls is NotFound:
        meta = (body.get("data") or {}).get("metadata") if isinstance(body.get("data"), dict) else None
        if isinstance(meta, dict) and meta.get("destroyed"):
            return NotFound(f"{what}: version {meta.get('version')} was destroyed ({where})")
        if isinstance(meta, dict) and meta.get("deletion_time"):
            return NotFound(f"{what}: version {meta.get('version')} was deleted ({where})")
    if issubclass(cls, Unavailable):
        return cls(f"{what}: {reason} ({where})", retry_after=retry_after)
    return cls(f"{what}: {reason} ({where})")


def _translate(exc: BaseException, what: str, where: str, timeout: float, login: bool = False) -> ProviderError:
    """Map one hvac or requests exception to ours, by its type only."""
    if isinstance(exc, hvac.exceptions.VaultError):
        return _from_status(_HVAC_STATUS.get(type(exc), 0), exc.json, what, where, login)
    if isinstance(exc, requests.exceptions.SSLError):
        text = str(exc)
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer failure" in text:
            # An https:// address, and a server that answers in plain HTTP
            # (`bao server -dev` does): no ca_cert can fix that.
            return _TlsError(f"{what}: {where} does not speak TLS (it answered in plain HTTP); "
                             "use an http:// address (address or VAULT_ADDR)")
        detail = "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in text else "TLS handshake failed"
        return _TlsError(f"{what}: {detail} for {where}; set ca_cert (VAULT_CACERT) to the CA that signed "
                         "its certificate")
    if isinstance(exc, requests.exceptions.Timeout):
        return Unavailable(f"{what}: no answer within {timeout:g}s from {where}")
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = _connection_reason(exc)
        if reason == "timed out":   # requests wraps a read timeout inside the body as ConnectionError
            return Unavailable(f"{what}: no answer within {timeout:g}s from {where}")
        return Unavailable(f"{what}: cannot connect to {where} ({reason})")
    if isinstance(exc, requests.exceptions.RequestException):
        return Unavailable(f"{what}: request to {where} failed")
    return Unavailable(f"{what}: {where} gave an answer that could not be read")


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _connection_reason(exc: BaseException) -> str:
    seen = set()
    node: Optional[BaseException] = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, ConnectionRefusedError):
            return "connection refused"
        if isinstance(node, socket.gaierror):
            return "host not found"
        if isinstance(node, ConnectionResetError):
            return "connection reset"
        if isinstance(node, TimeoutError) or type(node).__name__ == "ReadTimeoutError":
            return "timed out"
        nxt = node.__cause__ or node.__context__
        if nxt is None and node.args and isinstance(node.args[0], BaseException):
            nxt = node.args[0]
        if nxt is None:
            reason = getattr(node, "reason", None)
            nxt = reason if isinstance(reason, BaseException) else None
        node = nxt
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host not found"
    return "connection failed"


def _copy(error: ProviderError) -> ProviderError:
    copy = type(error)(*error.args)
    if isinstance(error, Unavailable):
        copy.retry_after = error.retry_after  # type: ignore[attr-defined]  # copy is an Unavailable
    return copy
