"""The one place Secret Manager, gRPC and google-auth failures become ours."""

from __future__ import annotations

from typing import Any, Tuple

from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors

from ...errors import Denied, InvalidSecret, NotFound, ProviderError, Throttled, Unavailable
from .names import _Name

# SDK exception types → (our class, message). Messages are built from what we
# asked (``{what}``, ``{where}``), never from the SDK's text, which may quote
# requests or responses. First match wins.
_ERRORS: Tuple[Tuple[Tuple[type, ...], type, str], ...] = (
    ((api_errors.PermissionDenied,), Denied,
     "permission denied on {what} (or it does not exist): the credentials need "
     "roles/secretmanager.secretAccessor on it"),
    ((api_errors.Unauthenticated, auth_errors.RefreshError), Denied,
     "{where} refused the credentials: renew them (gcloud auth application-default login, "
     "GOOGLE_APPLICATION_CREDENTIALS, or the workload's service account)"),
    ((auth_errors.DefaultCredentialsError,), Denied,
     "no usable Application Default Credentials: set GOOGLE_APPLICATION_CREDENTIALS to a "
     "credentials file, run `gcloud auth application-default login`, or run with a service account"),
    ((api_errors.DeadlineExceeded,), Unavailable, "{where} did not answer for {what} within {timeout:g}s"),
    ((api_errors.TooManyRequests,), Throttled, "{where} refused {what}: quota exhausted (throttled)"),
    ((api_errors.ServiceUnavailable, auth_errors.TransportError), Unavailable,
     "{where} cannot be reached for {what}"),
    ((api_errors.InvalidArgument,), InvalidSecret, "{where} refused the name of {what} as invalid"),
)


def _translate(exc: BaseException, what: Any, where: str, timeout: float) -> ProviderError:
    """Any exception of the SDK, gRPC or google-auth → one of our errors.
    ``what`` is the ``_Name`` asked for, or a description."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, api_errors.NotFound):
        if isinstance(what, _Name) and what.version != "latest":
            return NotFound(f"secret {what.secret_name} has no version {what.version} (or does not exist)")
        if isinstance(what, _Name):
            return NotFound(f"secret {what.secret_name} does not exist or has no versions")
        return NotFound(f"{what} does not exist")
    if isinstance(exc, auth_errors.RefreshError) and _transient(exc):
        return Unavailable(f"{where} cannot be reached for {what}")
    if isinstance(exc, api_errors.FailedPrecondition):
        text = exc.message or ""
        for state in ("DISABLED", "DESTROYED"):
            if f"{state} state" in text:
                return InvalidSecret(f"{what} is {state.lower()}; enable a version or pin an enabled one")
        return InvalidSecret(f"{where} refused {what} (failed precondition)")
    for types, kind, template in _ERRORS:
        if isinstance(exc, types):
            return kind(template.format(what=what, where=where, timeout=timeout))
    code = getattr(exc, "grpc_status_code", None)
    # The gRPC status in words ("deadline exceeded"); an error without one is unexpected.
    reason = code.name.lower().replace("_", " ") if code is not None else "an unexpected error"
    return ProviderError(f"{where} failed on {what} ({reason})")


def _transient(exc: BaseException) -> bool:
    """A credential refresh that failed on the network, not on a refusal:
    google-auth wraps both in RefreshError (the metadata server down, or no
    service account), so look at what it wraps."""
    if getattr(exc, "retryable", False):
        return True
    cause = exc.__cause__
    return isinstance(cause, auth_errors.TransportError) and (
        cause.__cause__ is not None or "unavailable" in str(cause).lower())
