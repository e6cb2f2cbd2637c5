"""What the two AWS providers share: one boto3 client built from the manifest
options over the standard credential chain, and the one table that turns
botocore errors into secretrun's.

Session (options of ``aws-secretsmanager`` and ``aws-ssm``):

- ``region``: else ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` (both read from
  secretrun's environment), else the profile's ``region``.
- ``profile``: a profile of the shared config/credentials files; else the
  SDK's own choice (``AWS_PROFILE``, then ``default``).
- ``endpoint_url``: else ``AWS_ENDPOINT_URL_<SERVICE>`` (``..._SECRETS_MANAGER``,
  ``..._SSM``), else ``AWS_ENDPOINT_URL``: VPC endpoints, LocalStack, moto.
- ``role_arn`` (+ ``external_id``, ``role_session_name``, default
  ``secretrun``): assume this role with the chain's credentials. The assumed
  credentials refresh themselves before they expire, so a supervisor that runs
  for days keeps polling. ``sts_endpoint_url`` (else ``AWS_ENDPOINT_URL_STS``,
  else ``AWS_ENDPOINT_URL``) says where STS is.

The credential chain itself (environment keys, shared files, profiles with
``source_profile``/``credential_process``/SSO, web identity, container and
instance roles) is botocore's, untouched; it reads the process environment, as
every AWS tool does.

Retries: the SDK's retry *mode* is the user's (``AWS_RETRY_MODE`` or the
profile's ``retry_mode``; botocore's default ``standard``), so ``adaptive``
client-side rate limiting works as configured. The *attempts* default to 2
(one SDK retry, which absorbs a single throttle with the SDK's own backoff)
unless ``AWS_MAX_ATTEMPTS`` or the profile's ``max_attempts`` says otherwise:
the resolver retries ``Unavailable`` itself, and the two multiply.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any, Callable, Mapping, NamedTuple, Optional

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.session

from ..errors import Denied, InvalidSecret, NotFound, ProviderConfigError, ProviderError, Throttled, Unavailable
from .base import OptionReader, ProviderContext

log = logging.getLogger("secretrun.providers.aws")

#: Attempts per SDK call (the first one included) when the user set none.
DEFAULT_ATTEMPTS = 2

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


class AwsSettings(NamedTuple):
    """The session options of one provider instance; ``None`` means "the
    SDK's default" (see the module docstring for each fallback)."""

    region: Optional[str] = None
    profile: Optional[str] = None
    endpoint_url: Optional[str] = None
    role_arn: Optional[str] = None
    external_id: Optional[str] = None
    role_session_name: str = "secretrun"
    sts_endpoint_url: Optional[str] = None
    retry_mode: Optional[str] = None
    max_attempts: Optional[int] = None


def read_settings(opts: OptionReader, ctx: ProviderContext, service_env: str) -> AwsSettings:
    """Read the session options, with their environment fallbacks, from
    ``opts``; problems are collected in ``opts`` (the caller calls
    ``opts.done()``). ``service_env`` is the service's part of
    ``AWS_ENDPOINT_URL_<SERVICE>``."""
    env = ctx.environ
    region = opts.str("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    profile = opts.str("profile") or None
    endpoint_url = (opts.str("endpoint_url") or env.get(f"AWS_ENDPOINT_URL_{service_env}")
                    or env.get("AWS_ENDPOINT_URL") or None)
    sts_endpoint_url = (opts.str("sts_endpoint_url") or env.get("AWS_ENDPOINT_URL_STS")
                        or env.get("AWS_ENDPOINT_URL") or None)
    role_arn = opts.str("role_arn") or None
    external_id = opts.str("external_id") or None
    session_name = opts.str("role_session_name") or None

    for key, url in (("endpoint_url", endpoint_url), ("sts_endpoint_url", sts_endpoint_url)):
        if url and not url.startswith(("http://", "https://")):
            opts.error(f"'{key}' must be an http:// or https:// URL, not {url!r}")
    if role_arn is not None and not _ROLE_ARN.match(role_arn):
        opts.error(f"'role_arn' must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), not {role_arn!r}")
    if role_arn is None:
        for key, value in (("external_id", external_id), ("role_session_name", session_name)):
            if value is not None:
                opts.error(f"'{key}' needs 'role_arn'")
    if session_name is not None and not _SESSION_NAME.match(session_name):
        opts.error("'role_session_name' must be 2-64 characters of letters, digits and _+=,.@-")

    retry_mode = env.get("AWS_RETRY_MODE") or None
    if retry_mode is not None and retry_mode not in ("legacy", "standard", "adaptive"):
        opts.error(f"AWS_RETRY_MODE must be legacy, standard or adaptive, not {retry_mode!r}")
        retry_mode = None
    max_attempts = None
    if env.get("AWS_MAX_ATTEMPTS"):
        try:
            max_attempts = int(env["AWS_MAX_ATTEMPTS"])
            if max_attempts < 1:
                raise ValueError
        except ValueError:
            opts.error(f"AWS_MAX_ATTEMPTS must be a whole number of at least 1, not {env['AWS_MAX_ATTEMPTS']!r}")
            max_attempts = None
    return AwsSettings(region, profile, endpoint_url, role_arn, external_id,
                       session_name or "secretrun", sts_endpoint_url, retry_mode, max_attempts)


class AwsClient:
    """One boto3 client for one provider instance, built on first use.

    Building a client costs ~150 ms (botocore loads the service model), so it
    is done lazily, from the resolver's worker thread, where it overlaps with
    other providers' work; the lock makes the first concurrent fetches share
    one build. boto3 clients are thread-safe once built.
    """

    def __init__(self, ctx: ProviderContext, settings: AwsSettings, service: str,
                 label: str, pool_size: int) -> None:
        self.ctx = ctx
        self.settings = settings
        self.service = service
        self.label = label
        self.pool_size = pool_size
        self._client: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        """The store's address for messages, e.g. ``AWS SSM Parameter Store (eu-west-1)``."""
        client = self._client
        region = client.meta.region_name if client is not None else self.settings.region
        parts = [region or "default region"]
        if self.settings.endpoint_url:
            parts.append(self.settings.endpoint_url)
        if self.settings.profile:
            parts.append(f"profile {self.settings.profile}")
        return f"{self.label} ({', '.join(parts)})"

    def client(self, what: str = "") -> Any:
        """The client, built on first use; a failure to build it (no region,
        an unknown profile...) is a ``ProviderError`` naming ``what``."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_or_raise(what or f"{self.label} client")
                client = self._client
        return client

    def call(self, operation: str, what: str, **params: Any) -> Mapping[str, Any]:
        """Call one API operation; every SDK failure comes out as a
        ``ProviderError`` whose message we wrote (``what`` names the secret)."""
        client = self.client(what)
        try:
            return getattr(client, operation)(**params)
        except Exception as exc:  # noqa: BLE001 - only the SDK call is inside this try
            error = translate(exc, what, self.describe(), self.settings)
        # Raised outside the except block: no chained SDK exception (whose
        # text may echo a request or a response) rides along in a traceback.
        raise error

    def _build_or_raise(self, what: str) -> Any:
        try:
            return self._build()
        except Exception as exc:  # noqa: BLE001 - SDK set-up only
            error = translate(exc, what, self.describe(), self.settings)
        raise error

    def _build(self) -> Any:
        s = self.settings
        core = botocore.session.Session(profile=s.profile)
        if s.profile:
            # Fail here, naming the profile, rather than at the first request.
            core.get_scoped_config()
        retries: dict = {}
        if s.retry_mode:
            retries["mode"] = s.retry_mode
        attempts = s.max_attempts or core.get_config_variable("max_attempts")
        retries["total_max_attempts"] = int(attempts) if attempts else DEFAULT_ATTEMPTS
        config = botocore.config.Config(
            connect_timeout=self.ctx.timeout, read_timeout=self.ctx.timeout,
            retries=retries, max_pool_connections=self.pool_size,
            user_agent_extra="secretrun")
        if s.role_arn:
            _assume_role(core, s, config)
        session = boto3.session.Session(botocore_session=core, region_name=s.region)
        client = session.client(self.service, endpoint_url=s.endpoint_url, config=config)
        log.debug("%s: client built (region %s, endpoint %s, retry attempts %s)",
                  self.label, client.meta.region_name, s.endpoint_url or "default",
                  retries["total_max_attempts"])
        return client


class _AssumedRole(botocore.credentials.CredentialProvider):
    """A credential provider that answers with one assumed-role credential
    set, refreshed by botocore before it expires."""

    METHOD = "secretrun-assume-role"

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials


def _assume_role(core: Any, s: AwsSettings, config: Any) -> None:
    """Make ``core`` sign with ``s.role_arn``, assumed with the credentials
    the standard chain finds (through a second session, so the chain is
    resolved exactly as it would be without a role)."""
    source = botocore.session.Session(profile=s.profile)
    source_credentials = source.get_credentials()
    if source_credentials is None:
        raise botocore.exceptions.NoCredentialsError()
    region = s.region or source.get_config_variable("region")
    # Called by the fetcher as create_sts("sts", aws_access_key_id=...).
    create_sts: Callable[..., Any] = functools.partial(
        source.create_client, region_name=region, endpoint_url=s.sts_endpoint_url, config=config)
    extra: dict = {"RoleSessionName": s.role_session_name}
    if s.external_id:
        extra["ExternalId"] = s.external_id
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=create_sts,
        source_credentials=source_credentials, role_arn=s.role_arn, extra_args=extra)
    credentials = botocore.credentials.DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role")
    core.register_component("credential_provider",
                            botocore.credentials.CredentialResolver([_AssumedRole(credentials)]))


# --- the error table ------------------------------------------------------------

#: The credentials themselves were refused: every other call will be too.
AUTHENTICATION = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
    "SignatureDoesNotMatch", "IncompleteSignature", "MissingAuthenticationToken", "AuthFailure",
    "ExpiredToken", "ExpiredTokenException", "RequestExpired",
})
# KMS refused to decrypt the value for us (Secrets Manager; SSM reports
# AccessDeniedException naming kms:Decrypt).
_KMS = frozenset({"DecryptionFailure", "KMSAccessDeniedException", "KMSDisabledException",
                  "KMSInvalidStateException", "KMSNotFoundException", "InvalidKeyId"})
_DENIED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}) | AUTHENTICATION | _KMS
_NOT_FOUND = frozenset({"ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound",
                        "NoSuchEntity"})
_THROTTLED = frozenset({"ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
                        "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException",
                        "SlowDown", "PriorRequestNotComplete"})
_SERVER = frozenset({"InternalServiceError", "InternalServiceErrorException", "InternalFailure",
                     "InternalError", "ServiceUnavailable", "ServiceUnavailableException",
                     "RequestTimeout", "RequestTimeoutException"})
_INVALID = frozenset({"InvalidRequestException", "InvalidParameterException", "InvalidParameterValue",
                      "ValidationException", "ParameterVersionLabelLimitExceeded",
                      "UnsupportedParameterType", "InvalidNextTokenException"})

_UNREACHABLE = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
# What went wrong, in words, for the SDK's network and configuration errors
# (the first matching type wins); messages never show a class name.
_UNREACHABLE_WORDS = (
    ((botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError), "timed out"),
    (botocore.exceptions.ProxyConnectionError, "could not connect through the proxy"),
    (botocore.exceptions.SSLError, "the TLS handshake failed"),
    (botocore.exceptions.EndpointConnectionError, "could not connect"),
    (botocore.exceptions.ConnectionClosedError, "the connection was closed before the answer"),
    (botocore.exceptions.ResponseStreamingError, "the answer was cut off"),
)
_CONFIG_WORDS = (
    ((botocore.exceptions.InvalidConfigError, botocore.exceptions.ConfigParseError),
     "a config file cannot be parsed"),
    (botocore.exceptions.InvalidRetryConfigurationError, "the retry settings are not valid"),
    (botocore.exceptions.UnknownServiceError, "the SDK does not know this service"),
    (botocore.exceptions.InvalidRegionError, "the region name is not valid"),
    (botocore.exceptions.UnknownEndpointError, "no endpoint is known for this region"),
)
_CONFIG = tuple(types for types, _ in _CONFIG_WORDS)   # ProfileNotFound and NoRegionError are said first


def classify(code: str, status: int, message: str = "") -> type:
    """The ``ProviderError`` class for an AWS error code (as in a
    ``ClientError`` or a ``BatchGetSecretValue`` ``Errors`` entry). ``message``
    is only searched for words, never copied."""
    if code in _DENIED or status in (401, 403):
        return Denied
    if code in _NOT_FOUND:
        return NotFound
    if code == "InvalidRequestException" and _is_deleted(message):
        return NotFound
    if code in _THROTTLED or status == 429:
        return Throttled
    if code in _SERVER or status >= 500:
        return Unavailable
    if code in _INVALID:
        return InvalidSecret
    return ProviderError


def _is_deleted(message: str) -> bool:
    # Secrets Manager: "...because it was marked for deletion." Nothing but
    # this sentence tells a deleted secret from other invalid requests.
    return "deleted" in message.lower() or "deletion" in message.lower()


def describe_error(code: str, status: int, message: str, operation: str, what: str, where: str,
                   settings: Optional[AwsSettings] = None) -> ProviderError:
    """A ``ProviderError`` for one AWS error, with a message built from what
    we know (the secret, the operation, the error code), never the SDK's
    text. ``status`` is 0 when unknown (a batch answer's error entry). The
    code is kept as ``aws_code`` on the error."""
    error = _describe(classify(code, status, message), code, status, operation, what, where, settings)
    error.aws_code = code  # type: ignore[attr-defined]
    return error


def _describe(cls: type, code: str, status: int, operation: str, what: str, where: str,
              settings: Optional[AwsSettings]) -> ProviderError:
    action = f"{operation} ({code})" if code else operation
    if operation == "AssumeRole" and settings is not None:
        sts = settings.sts_endpoint_url or "the default STS endpoint"
        return cls(f"{what}: assuming role {settings.role_arn} failed ({code or f'HTTP {status}'}) at {sts}")
    if cls is Denied:
        if code in _KMS:
            return Denied(f"{what}: its KMS key cannot be used to decrypt it ({code}) in {where}")
        if code in AUTHENTICATION:
            state = "have expired" if "Expired" in code else "were refused"
            return Denied(f"{what}: the AWS credentials {state} ({code}) by {where}")
        return Denied(f"{what}: access denied to {action} in {where}")
    if cls is NotFound:
        if code == "InvalidRequestException":
            return NotFound(f"{what} is marked for deletion in {where}; restore it "
                            "(aws secretsmanager restore-secret) or remove the reference")
        if code == "ParameterVersionNotFound":
            return NotFound(f"{what}: no such version in {where}")
        return NotFound(f"{what} does not exist in {where}")
    http = f" (HTTP {status})" if status else ""
    if cls is Throttled:
        return Throttled(f"{what}: {action} was throttled by {where}")
    if cls is Unavailable:
        return Unavailable(f"{what}: {action} failed{http} in {where}")
    if cls is InvalidSecret:
        return InvalidSecret(f"{what}: {where} refused {action} as invalid")
    return ProviderError(f"{what}: {action} failed{http} in {where}")


def translate(exc: BaseException, what: str, where: str, settings: Optional[AwsSettings] = None) -> ProviderError:
    """The one mapping from SDK exceptions to secretrun's. Messages are
    built here from ``what``/``where`` and exception *types* or error
    *codes*; an SDK message is never copied (it may quote a request)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        return describe_error(str(error.get("Code") or ""), int(meta.get("HTTPStatusCode") or 0),
                              str(error.get("Message") or ""), exc.operation_name or "request",
                              what, where, settings)
    if isinstance(exc, (botocore.exceptions.UnauthorizedSSOTokenError, botocore.exceptions.SSOTokenLoadError,
                        botocore.exceptions.TokenRetrievalError)):
        return Denied(f"{what}: the SSO session has expired or is missing; run 'aws sso login'")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return Denied(f"{what}: no AWS credentials found (environment, shared files, profile, "
                      f"SSO, container or instance role) for {where}")
    if isinstance(exc, botocore.exceptions.PartialCredentialsError):
        return Denied(f"{what}: AWS credentials could not be loaded (only part of them is set) for {where}")
    if isinstance(exc, botocore.exceptions.CredentialRetrievalError):
        return Denied(f"{what}: AWS credentials could not be loaded (their credential process or "
                      f"provider failed) for {where}")
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        profile = settings.profile if settings else None
        return ProviderConfigError(f"{what}: AWS profile {profile!r} is not in the shared config "
                                   "or credentials files")
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return ProviderConfigError(f"{what}: no AWS region; set 'region' in the provider, "
                                   "or AWS_REGION, or a profile's region")
    if isinstance(exc, _CONFIG):
        return ProviderConfigError(f"{what}: invalid AWS configuration ({_words(exc, _CONFIG_WORDS, 'not valid')})")
    if isinstance(exc, _UNREACHABLE):
        return Unavailable(f"{what}: cannot reach {where} ({_words(exc, _UNREACHABLE_WORDS, 'the connection failed')})")
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return InvalidSecret(f"{what}: not a valid request for {where} (a name or version is malformed)")
    return ProviderError(f"{what}: the AWS SDK failed unexpectedly with {where}")


def _words(exc: BaseException, table, otherwise: str) -> str:
    """What ``exc`` means, from the first type in ``table`` it is an instance of."""
    for types, words in table:
        if isinstance(exc, types):
            return words
    return otherwise
