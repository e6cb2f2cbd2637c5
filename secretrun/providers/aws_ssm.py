"""``aws-ssm``: AWS Systems Manager Parameter Store.

A reference's path is a parameter name or ARN. A name holding ``/`` is
hierarchical and gets its leading ``/`` if it was left out
(``${ssm:app/db/url}`` reads ``/app/db/url``); a name without ``/`` is used
as is. ``?version=`` takes a version number or a label (the ``NAME:3`` and
``NAME:label`` selectors of the API).

``String``, ``StringList`` (the comma-separated text, as stored) and
``SecureString`` (decrypted) are all returned as text. Several references are
read with ``GetParameters``, 10 per call.

``[[import]]`` of a path reads every parameter below it
(``GetParametersByPath``, recursive, paginated) and names each variable by
this rule: the path and the ``/`` after it are removed, the rest is
upper-cased, and every ``/``, ``-`` and ``.`` becomes ``_``:
``/app/prod/db/max-conns`` imported from ``/app/prod`` is ``DB_MAX_CONNS``
(the import's ``prefix`` is added before it). Two parameters that give one
name are refused, naming both.

Change detection (``probe``) asks for the parameter's ``Version`` without
decryption: a ``GetParameter`` is as cheap as a fetch, but skipping the
decryption spares a KMS call (and its quota) on every poll. Polling several
parameters (``probe_batch``) asks ``GetParameters`` for 10 names a call, so
a poll of 20 parameters costs 2 of the account's Parameter Store
transactions (40 a second by default, shared by ``GetParameter``,
``GetParameters`` and ``GetParametersByPath``), not 20.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ..errors import InvalidSecret, NotFound, ProviderConfigError, ProviderError
from .aws_common import AwsClient, read_settings
from .base import OptionReader, Provider, ProviderContext, Secret, SecretId, Value

#: The most names ``GetParameters`` takes in one call.
BATCH_LIMIT = 10
# GetParametersByPath returns at most 10 parameters a page; 10,000 pages is
# the account's limit of standard parameters ten times over.
_MAX_PAGES = 10_000
_SELECTOR = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def parameter_name(path: str) -> str:
    """The API name for a reference path (see the module doc)."""
    if path.startswith("arn:") or path.startswith("/") or "/" not in path:
        return path
    return "/" + path


def variable_name(parameter: str, prefix: str) -> str:
    """The import rule: ``parameter`` below ``prefix`` (which ends in ``/``)
    as an environment variable name."""
    relative = parameter[len(prefix):] if parameter.startswith(prefix) else parameter.rsplit("/", 1)[-1]
    return re.sub(r"[/.-]", "_", relative.upper())


def _what(path: str) -> str:
    return f"parameter {path!r}"


class SsmProvider(Provider):
    type_name = "aws-ssm"
    scaffold = ('[providers.ssm]\ntype = "aws-ssm"\n', "ssm", "/{app}/{name}")
    batch_size = BATCH_LIMIT
    max_concurrency = 16

    def __init__(self, ctx: ProviderContext, aws: AwsClient) -> None:
        super().__init__(ctx)
        self.aws = aws

    @classmethod
    def from_config(cls, ctx: ProviderContext, options: Mapping[str, Any]) -> "SsmProvider":
        opts = OptionReader(ctx, options)
        settings = read_settings(opts, ctx, "SSM")
        opts.done()
        return cls(ctx, AwsClient(ctx, settings, "ssm", "AWS SSM Parameter Store",
                                  pool_size=cls.max_concurrency + 4))

    def describe(self) -> str:
        return self.aws.describe()

    def _request(self, sid: SecretId) -> str:
        """The name with its selector, as the API takes it."""
        name = parameter_name(sid.path)
        if sid.version is None:
            return name
        if not _SELECTOR.match(sid.version):
            raise InvalidSecret(f"{_what(sid.path)}: version {sid.version!r} is neither a version "
                                "number nor a label (letters, digits, '_', '.', '-')")
        return f"{name}:{sid.version}"

    # --- reading ----------------------------------------------------------------

    def fetch(self, sid: SecretId) -> Secret:
        if sid.tree:
            return self._fetch_path(sid, decrypt=True)
        response = self.aws.call("get_parameter", _what(sid.path), Name=self._request(sid), WithDecryption=True)
        return _secret(response.get("Parameter") or {}, _what(sid.path))

    def fetch_batch(self, sids: Tuple[SecretId, ...]) -> Mapping[SecretId, Union[Secret, ProviderError]]:
        """One ``GetParameters`` call for up to 10 references; path imports,
        and any answer the call leaves unclear, are left out of the answer
        (the resolver reads them on their own). A failure of the whole call
        is raised."""
        found, errors = self._get_parameters(sids, decrypt=True, alone=lambda sid: sid.tree)
        out: Dict[SecretId, Union[Secret, ProviderError]] = dict(errors)
        for sid, parameter in found.items():
            out[sid] = _secret(parameter, _what(sid.path))
        # Path imports and ids the answer left unclear are not answered here:
        # the resolver reads what a batch leaves out one by one, with retries.
        return out

    def _get_parameters(self, sids: Tuple[SecretId, ...], decrypt: bool, alone: Callable[[SecretId], bool]
                        ) -> Tuple[Dict[SecretId, Mapping[str, Any]], Dict[SecretId, ProviderError]]:
        """One ``GetParameters`` for the references not asked ``alone``:
        the parameter each one found, and the errors of those refused or
        reported missing. Others (an answer left unclear) are in neither."""
        errors: Dict[SecretId, ProviderError] = {}
        wanted: Dict[SecretId, str] = {}
        for sid in sids:
            if alone(sid):
                continue
            try:
                wanted[sid] = self._request(sid)
            except ProviderError as exc:
                errors[sid] = exc
        names = list(dict.fromkeys(wanted.values()))
        if len(names) > BATCH_LIMIT:
            raise ProviderConfigError(f"GetParameters takes at most {BATCH_LIMIT} names, not {len(names)}")
        found: Dict[SecretId, Mapping[str, Any]] = {}
        if len(names) > 1:
            response = self.aws.call("get_parameters", f"{len(names)} parameters", Names=names,
                                     WithDecryption=decrypt)
            parameters = _match_parameters(names, response.get("Parameters") or [])
            invalid = set(response.get("InvalidParameters") or ())
            for sid, name in wanted.items():
                if name in parameters:
                    found[sid] = parameters[name]
                elif name in invalid:
                    errors[sid] = NotFound(f"{_what(sid.path)} does not exist in {self.describe()}")
        return found, errors

    def _parameters_by_path(self, sid: SecretId, decrypt: bool) -> Tuple[str, List[Mapping[str, Any]]]:
        what = f"path {sid.path!r}"
        if sid.version is not None:
            raise InvalidSecret(f"{what}: ?version= does not apply to a path import")
        path = parameter_name(sid.path)
        if path.startswith("arn:"):
            raise InvalidSecret(f"{what}: a path import takes a path such as /app/prod, not an ARN")
        if not path.startswith("/"):
            path = "/" + path
        params: Dict[str, Any] = {"Path": path, "Recursive": True, "WithDecryption": decrypt, "MaxResults": 10}
        found: List[Mapping[str, Any]] = []
        for _ in range(_MAX_PAGES):
            response = self.aws.call("get_parameters_by_path", what, **params)
            found += response.get("Parameters") or []
            token = response.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
        else:
            raise InvalidSecret(f"{what}: more than {_MAX_PAGES * 10} parameters")
        if not found:
            raise NotFound(f"{what}: no parameter below it in {self.describe()} (or none readable)")
        return path, found

    def _fetch_path(self, sid: SecretId, decrypt: bool) -> Secret:
        path, found = self._parameters_by_path(sid, decrypt)
        prefix = path.rstrip("/") + "/"
        values: Dict[str, str] = {}
        origin: Dict[str, str] = {}
        for parameter in found:
            name = str(parameter.get("Name") or "")
            variable = variable_name(name, prefix)
            if variable in origin:
                raise InvalidSecret(f"path {sid.path!r}: parameters {origin[variable]} and {name} "
                                    f"both import as {variable}")
            origin[variable] = name
            values[variable] = str(parameter.get("Value") or "")
        return Secret(values, version=_path_token(found))

    def probe(self, sid: SecretId) -> Optional[str]:
        """The parameter's ``Version`` now, read without decryption; for a
        path import, a digest of every name and version below it. Equal to
        ``Secret.version`` of the fetch while nothing changed; never holds a
        value. A pinned version number costs no call."""
        if sid.tree:
            return _path_token(self._parameters_by_path(sid, decrypt=False)[1])
        if sid.version is not None and sid.version.isdigit():
            return sid.version
        response = self.aws.call("get_parameter", _what(sid.path), Name=self._request(sid), WithDecryption=False)
        version = (response.get("Parameter") or {}).get("Version")
        return str(version) if version is not None else None

    def probe_batch(self, sids: Tuple[SecretId, ...]) -> Mapping[SecretId, Union[str, Secret, None, ProviderError]]:
        """The versions of up to 10 parameters from one ``GetParameters``
        without decryption; path imports, pinned versions and any answer the
        call leaves unclear are probed on their own. A failure of the whole
        call is raised."""
        asked_alone = lambda sid: sid.tree or (sid.version is not None and sid.version.isdigit())  # noqa: E731
        found, errors = self._get_parameters(sids, decrypt=False, alone=asked_alone)
        out: Dict[SecretId, Union[str, Secret, None, ProviderError]] = dict(errors)
        for sid, parameter in found.items():
            if parameter.get("Version") is not None:
                out[sid] = str(parameter["Version"])
        out.update(super().probe_batch(tuple(sid for sid in sids if sid not in out)))
        return out

    # --- writing ----------------------------------------------------------------

    def write(self, sid: SecretId, value: Value) -> Optional[str]:
        """Store ``value`` as a new version; a new parameter is created as a
        ``SecureString``, an existing one keeps its type. Returns the version."""
        what = _what(sid.path)
        if sid.version is not None or sid.tree:
            raise ProviderConfigError(f"{what}: can only write a parameter by name, without a version")
        if isinstance(value, bytes):
            raise InvalidSecret(f"{what}: Parameter Store holds text, not binary")
        text = value if isinstance(value, str) else _json(value)
        name = parameter_name(sid.path)
        try:
            self.aws.call("get_parameter", what, Name=name, WithDecryption=False)
            params: Dict[str, Any] = {"Overwrite": True}
        except NotFound:
            params = {"Type": "SecureString"}
        response = self.aws.call("put_parameter", what, Name=name, Value=text, **params)
        version = response.get("Version")
        return str(version) if version is not None else None


def _json(value: Mapping[str, Any]) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def _secret(parameter: Mapping[str, Any], what: str) -> Secret:
    if parameter.get("Value") is None:
        raise InvalidSecret(f"{what} has no value")
    version = parameter.get("Version")
    return Secret(str(parameter["Value"]), version=str(version) if version is not None else None)


def _match_parameters(names: List[str], parameters: List[Mapping[str, Any]]) -> Dict[str, Mapping[str, Any]]:
    """Which returned parameter answers which requested name. A request is
    ``NAME`` or ``NAME:SELECTOR`` (NAME may be an ARN); the answer carries
    ``Name``, ``ARN`` and, from AWS, ``Selector``. When one NAME is asked for
    with several selectors and the answer has no ``Selector``, only version
    numbers can be told apart; the rest stays unmatched and is read alone."""
    bases: Dict[str, int] = {}
    split: Dict[str, Tuple[str, Optional[str]]] = {}
    for request in names:
        base, sep, selector = _split_selector(request)
        split[request] = (base, selector if sep else None)
        bases[base] = bases.get(base, 0) + 1
    out: Dict[str, Mapping[str, Any]] = {}
    for request, (base, wanted) in split.items():
        for parameter in parameters:
            if base not in (parameter.get("Name"), parameter.get("ARN")):
                continue
            answered = parameter.get("Selector")
            if answered is not None:
                ok = answered == (f":{wanted}" if wanted is not None else "") or (
                    wanted is None and not answered)
            elif wanted is not None and wanted.isdigit():
                ok = str(parameter.get("Version")) == wanted
            else:
                ok = bases[base] == 1
            if ok:
                out[request] = parameter
                break
    return out


def _split_selector(request: str) -> Tuple[str, str, str]:
    # An ARN holds colons of its own: only a colon after the last '/' starts
    # a selector (arn:aws:ssm:R:A:parameter/app/db:3).
    slash = request.rfind("/")
    colon = request.rfind(":")
    if colon > slash and not (request.startswith("arn:") and slash < 0):
        return request[:colon], ":", request[colon + 1:]
    return request, "", ""


def _path_token(parameters: List[Mapping[str, Any]]) -> str:
    """A version token for a path import: a digest of the sorted names and
    versions (no value goes into it)."""
    digest = hashlib.sha256()
    for name, version in sorted((str(p.get("Name")), str(p.get("Version"))) for p in parameters):
        digest.update(f"{name}\0{version}\n".encode())
    return "sha256:" + digest.hexdigest()[:32]
