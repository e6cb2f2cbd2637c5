"""``aws-secretsmanager``: AWS Secrets Manager.

A reference's path is a secret name or ARN (full, or partial: without the
six-character suffix); ``?version=`` takes a VersionId or a staging label
(``AWSCURRENT``, ``AWSPREVIOUS``, ``AWSPENDING`` or a custom one). A value of
32 to 64 characters is a VersionId (every VersionId is: it is the
ClientRequestToken of the write), anything else is a staging label.

``SecretString`` is returned as text, JSON or not: the resolver selects
``#key`` / ``#a.b`` fields from it, and ``[[import]]`` takes every key of its
JSON object. ``SecretBinary`` that is valid UTF-8 is text too; other binary
stays bytes, which only ``file = true`` can deliver.

Several unpinned secrets are read with ``BatchGetSecretValue``, 20 per call
(the resolver runs the calls in parallel). Where a policy denies that action,
the resolver falls back to one ``GetSecretValue`` per secret, in its pool;
the provider says so once at debug level, and does not try the batch call
again.

Change detection (``probe``) reads ``DescribeSecret``'s VersionId-to-stages
map, which has the highest request quota of the service (40,000/s a region,
against 10,000 for ``GetSecretValue`` and 100 for ``BatchGetSecretValue``)
and never carries a value.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ..errors import Denied, InvalidSecret, NotFound, ProviderConfigError, ProviderError
from .aws_common import AUTHENTICATION, AwsClient, describe_error, log, read_settings
from .base import OptionReader, Provider, ProviderContext, Secret, SecretId, Value, as_mapping

#: The most secret ids ``BatchGetSecretValue`` takes in one call.
BATCH_LIMIT = 20
# NextToken pages one batch call may return; with at most 20 ids there is
# normally one page, more only when the values are large.
_MAX_PAGES = 20


def is_version_id(version: str) -> bool:
    """True for a VersionId, False for a staging label (see the module doc)."""
    return 32 <= len(version) <= 64


def _version_params(version: Optional[str]) -> Dict[str, str]:
    if version is None:
        return {}
    return {"VersionId": version} if is_version_id(version) else {"VersionStage": version}


def _what(path: str) -> str:
    return f"secret {path!r}"


def _matches(requested: str, entry: Mapping[str, Any]) -> bool:
    """Whether a batch result answers ``requested`` (a name, a full ARN, or
    an ARN without the random suffix ``-AbCdEf``)."""
    if requested == entry.get("Name"):
        return True
    arn = str(entry.get("ARN") or "")
    if not requested.startswith("arn:"):
        return False
    return arn == requested or (arn.startswith(requested + "-") and len(arn) == len(requested) + 7)


class SecretsManagerProvider(Provider):
    type_name = "aws-secretsmanager"
    scaffold = ('[providers.aws]\ntype = "aws-secretsmanager"\n# region = "eu-west-1"\n', "aws", "{app}#{name}")
    batch_size = BATCH_LIMIT
    max_concurrency = 16

    def __init__(self, ctx: ProviderContext, aws: AwsClient) -> None:
        super().__init__(ctx)
        self.aws = aws
        self._batch_denied = False
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "SecretsManagerProvider":
        opts = OptionReader(ctx, options)
        settings = read_settings(opts, ctx, "SECRETS_MANAGER")
        opts.done()
        return cls(ctx, AwsClient(ctx, settings, "secretsmanager", "AWS Secrets Manager",
                                  pool_size=cls.max_concurrency + 4))

    def describe(self) -> str:
        return self.aws.describe()

    # --- reading ----------------------------------------------------------------

    def fetch(self, sid: SecretId) -> Secret:
        response = self.aws.call("get_secret_value", _what(sid.path), SecretId=sid.path,
                                 **_version_params(sid.version))
        return _secret(sid, response)

    def fetch_batch(self, sids: Tuple[SecretId, ...]) -> Mapping[SecretId, Union[Secret, ProviderError]]:
        """One ``BatchGetSecretValue`` call for the unpinned secrets (it can
        only read ``AWSCURRENT``). The pinned ones, any the batch answer
        leaves out, and all of them when the batch call is denied are left
        out of the answer: the resolver reads those one by one, in its own
        pool (``secretrun.fetch``). A failure of the whole batch call is
        raised, except a denial."""
        out: Dict[SecretId, Union[Secret, ProviderError]] = {}
        current = [sid for sid in sids if sid.version is None]
        if len(current) > 1 and not self._batch_denied:
            try:
                out.update(self._batch(current))
            except Denied as exc:
                if getattr(exc, "aws_code", "") in AUTHENTICATION:
                    raise   # the credentials, not the batch action: single reads would fail too
                self._note_denied(getattr(exc, "aws_code", ""))
        return out

    def _batch(self, sids: List[SecretId]) -> Dict[SecretId, Union[Secret, ProviderError]]:
        ids = list(dict.fromkeys(sid.path for sid in sids))
        if len(ids) > BATCH_LIMIT:
            raise ProviderConfigError(f"BatchGetSecretValue takes at most {BATCH_LIMIT} secrets, not {len(ids)}")
        values: List[Mapping[str, Any]] = []
        errors: List[Mapping[str, Any]] = []
        what = f"{len(ids)} secrets"
        params: Dict[str, Any] = {"SecretIdList": ids}
        for _ in range(_MAX_PAGES):
            response = self.aws.call("batch_get_secret_value", what, **params)
            values += response.get("SecretValues") or []
            errors += response.get("Errors") or []
            token = response.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
        out: Dict[SecretId, Union[Secret, ProviderError]] = {}
        for sid in sids:
            entry = next((v for v in values if _matches(sid.path, v)), None)
            if entry is not None:
                try:
                    out[sid] = _secret(sid, entry)
                except ProviderError as exc:
                    out[sid] = exc
                continue
            error = next((e for e in errors if e.get("SecretId") == sid.path), None)
            if error is not None:
                out[sid] = describe_error(str(error.get("ErrorCode") or ""), 0, str(error.get("Message") or ""),
                                          "BatchGetSecretValue", _what(sid.path), self.describe())
            # Neither: left out, read on its own by the caller.
        return out

    def _note_denied(self, code: str) -> None:
        with self._lock:
            first = not self._batch_denied
            self._batch_denied = True
            # Later resolutions can skip the batch path altogether.
            self.batch_size = 1
        if first:
            log.debug("%s: BatchGetSecretValue is denied (%s); reading secrets one by one "
                      "with GetSecretValue", self.describe(), code or "access denied")

    def probe(self, sid: SecretId) -> Optional[str]:
        """The VersionId the reference points at now, from ``DescribeSecret``
        (equal to ``Secret.version`` of the fetch while nothing changed). A
        pinned VersionId never changes and costs no call."""
        if sid.version is not None and is_version_id(sid.version):
            return sid.version
        what = _what(sid.path)
        response = self.aws.call("describe_secret", what, SecretId=sid.path)
        if response.get("DeletedDate"):
            raise NotFound(f"{what} is marked for deletion in {self.describe()}")
        stage = sid.version or "AWSCURRENT"
        for version_id, stages in (response.get("VersionIdsToStages") or {}).items():
            if stage in (stages or ()):
                return str(version_id)
        raise NotFound(f"{what} has no version with staging label {stage} in {self.describe()}")

    def changed_at(self, sid: SecretId) -> Optional[float]:
        """``DescribeSecret``'s ``LastChangedDate`` (its creation date if it
        never changed), as seconds since the epoch."""
        response = self.aws.call("describe_secret", _what(sid.path), SecretId=sid.path)
        when = response.get("LastChangedDate") or response.get("CreatedDate")
        return when.timestamp() if when is not None and hasattr(when, "timestamp") else None

    # --- writing ----------------------------------------------------------------

    def write(self, sid: SecretId, value: Value) -> Optional[str]:
        """Store ``value`` as the new ``AWSCURRENT`` version (creating the
        secret if it does not exist); returns the new VersionId."""
        if sid.version is not None:
            raise ProviderConfigError(f"{_what(sid.path)}: cannot write to a pinned version ({sid.version})")
        if isinstance(value, bytes):
            payload: Dict[str, Any] = {"SecretBinary": value}
        elif isinstance(value, Mapping):
            payload = {"SecretString": json.dumps(value, separators=(",", ":"))}
        else:
            payload = {"SecretString": value}
        what = _what(sid.path)
        try:
            response = self.aws.call("put_secret_value", what, SecretId=sid.path, **payload)
        except NotFound as exc:
            if "marked for deletion" in str(exc) or sid.path.startswith("arn:"):
                raise
            response = self.aws.call("create_secret", what, Name=sid.path, **payload)
        return str(response.get("VersionId") or "") or None


def _secret(sid: SecretId, response: Mapping[str, Any]) -> Secret:
    """A ``GetSecretValue``-shaped answer as a ``Secret``."""
    what = _what(sid.path)
    value: Union[str, bytes, Mapping[str, Any]]
    if response.get("SecretString") is not None:
        value = response["SecretString"]
    elif response.get("SecretBinary") is not None:
        data = response["SecretBinary"]
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            value = bytes(data)
    else:
        raise InvalidSecret(f"{what} has no value (neither SecretString nor SecretBinary)")
    if sid.tree:
        value = dict(as_mapping(value, what))
    version = response.get("VersionId")
    return Secret(value, version=str(version) if version else None)
