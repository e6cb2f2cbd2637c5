"""Errors, problems and the exit codes they map to (numbers in ``exitcodes``).

Every failure secretrun reports is either one ``SecretrunError`` or a
``ProblemReport`` carrying many ``Problem`` records, so that a user sees every
missing variable at once instead of fixing them one run at a time.

    SecretrunError (exit_code)
    ├── UsageError            2    bad command line
    ├── ProblemReport         78 / 77 / 69 / 65 / 1, from its problems (see ``Kind``)
    │   ├── ManifestError     the manifest itself is wrong; nothing was fetched
    │   └── ResolutionError   fetching or validating values failed
    └── CommandError          126 / 127, the command cannot be executed

Store-side failures are ``ProviderError`` subclasses (``NotFound``, ``Denied``,
``Unavailable`` and its ``Throttled``, ``InvalidSecret``, ``ProviderConfigError``). Providers raise them,
the resolver keeps them as data and turns them into problems naming the variable.

Nothing in this module ever holds a secret value: a ``Problem`` has names,
references and a message, and messages are written by code that never formats
a value into them.
"""

from __future__ import annotations

from typing import ClassVar, Iterable, NamedTuple, Optional, Tuple

from . import exitcodes


class Kind(int):
    """What went wrong, as its exit code (SPEC §4): an int with a ``name``.

    Not an ``enum.IntEnum``: building an enum class costs more than a
    millisecond of every start, and nothing here needs more than the value
    and its name."""

    name: str

    def __new__(cls, value: int, name: str) -> "Kind":
        kind = int.__new__(cls, value)
        kind.name = name
        return kind

    def __repr__(self) -> str:
        return f"Kind.{self.name}"

    def __str__(self) -> str:  # as IntEnum's: the number
        return int.__repr__(self)

    MISSING: ClassVar["Kind"]       # a secret or key does not exist, or another failure
    INVALID: ClassVar["Kind"]       # a value failed validation
    UNAVAILABLE: ClassVar["Kind"]   # a store could not be reached after the retries
    DENIED: ClassVar["Kind"]        # a store refused access
    MANIFEST: ClassVar["Kind"]      # the manifest is invalid


for _value, _name in ((exitcodes.FAILURE, "MISSING"), (exitcodes.INVALID, "INVALID"),
                      (exitcodes.UNAVAILABLE, "UNAVAILABLE"), (exitcodes.DENIED, "DENIED"),
                      (exitcodes.MANIFEST, "MANIFEST")):
    setattr(Kind, _name, Kind(_value, _name))


# When several problems are reported together, the exit code is the first kind
# of this list present: configuration before infrastructure before content, so
# a script can tell "fix the manifest" from "the store is down" from "a value".
_PRECEDENCE = (Kind.MANIFEST, Kind.DENIED, Kind.UNAVAILABLE, Kind.MISSING, Kind.INVALID)


class Problem(NamedTuple):
    """One thing that is wrong, with where it is; never a value."""

    kind: Kind
    message: str
    variable: Optional[str] = None
    provider: Optional[str] = None
    reference: Optional[str] = None
    location: Optional[str] = None   # a file, with line/column when known

    def __str__(self) -> str:
        where = []
        if self.location:
            where.append(self.location)
        if self.variable:
            where.append(self.variable)
        head = ": ".join(where)
        tail = []
        if self.reference:
            tail.append(f"reference {self.reference}")
        if self.provider and (not self.reference or not self.reference.startswith("${" + self.provider + ":")):
            tail.append(f"provider {self.provider!r}")
        text = f"{head}: {self.message}" if head else self.message
        return f"{text} ({', '.join(tail)})" if tail else text


class SecretrunError(Exception):
    """Base of every error secretrun reports to its user."""

    exit_code: ClassVar[int] = exitcodes.FAILURE

    @property
    def code(self) -> int:
        return self.exit_code


class UsageError(SecretrunError):
    exit_code = exitcodes.USAGE


class CommandError(SecretrunError):
    """The command could not be executed: 127 not found, 126 not executable."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self._code = exit_code

    @property
    def code(self) -> int:
        return self._code


class ProblemReport(SecretrunError):
    """Many problems found together; the exit code follows ``_PRECEDENCE``."""

    title: str = "secretrun failed"

    def __init__(self, problems: Iterable[Problem], title: Optional[str] = None) -> None:
        self.problems = tuple(problems)
        if title:
            self.title = title
        super().__init__(self.render())

    @property
    def code(self) -> int:
        kinds = {p.kind for p in self.problems}
        for kind in _PRECEDENCE:
            if kind in kinds:
                return int(kind)
        return exitcodes.FAILURE

    def render(self) -> str:
        count = len(self.problems)
        lines = [f"{self.title} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class ManifestError(ProblemReport):
    title = "invalid manifest"


class ResolutionError(ProblemReport):
    title = "could not resolve the environment"

    #: The throttling answers among the problems (set by a watch refresh):
    #: the poller slows down for them instead of treating them as an outage.
    throttled: Tuple["Throttled", ...] = ()


# --- store-side errors, raised by providers and kept as data by the resolver ---


class ProviderError(Exception):
    """A store refused or failed one request. The message names what was asked
    (path, field, store address), never a value."""

    kind: ClassVar[Kind] = Kind.MISSING
    retryable: ClassVar[bool] = False


class NotFound(ProviderError):
    kind = Kind.MISSING


class Denied(ProviderError):
    kind = Kind.DENIED


class Unavailable(ProviderError):
    """Transient: connection refused, timeout, 5xx, throttling, sealed.

    ``retry_after`` (seconds) is the least the store asks to be left alone
    (a Retry-After header, a per-minute quota); the resolver waits at least
    that long before its next attempt."""

    kind = Kind.UNAVAILABLE
    retryable = True

    def __init__(self, message: str = "", retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(Unavailable):
    """The store is up but refused the request for its rate: HTTP 429 (Vault
    and OpenBao rate-limit quotas, Azure Key Vault), AWS
    ``ThrottlingException``/``TooManyRequestsException``, GCP
    ``RESOURCE_EXHAUSTED``. ``retry_after`` when the store sent one.

    Retried like any ``Unavailable`` when resolving for a start; a watching
    supervisor instead lengthens its poll interval (``secretrun.backoff``),
    since a fleet that retries at once is what keeps a store throttling."""


class InvalidSecret(ProviderError):
    """The secret exists but cannot be used as asked (not JSON for ``#key``,
    binary where text is needed, a disabled version...)."""

    kind = Kind.MISSING


class ProviderConfigError(ProviderError):
    """A provider's own options are wrong, or its SDK is not installed."""

    kind = Kind.MANIFEST


# What each kind of failure is, in words, for messages that would otherwise
# show a Python class name ("(Unavailable)", "error=Denied: ...").
_KIND_WORDS = {Kind.MISSING: "not found", Kind.INVALID: "invalid value", Kind.UNAVAILABLE: "store unreachable",
               Kind.DENIED: "access denied", Kind.MANIFEST: "configuration error"}


def describe(error: BaseException) -> str:
    """An error in words, safe to log: our own errors by their message (built
    from names and references, never values), prefixed with what kind of
    failure it is unless the message says so already; anything else by its
    kind alone, since a library's message may quote the data it handled."""
    if isinstance(error, ProviderError):
        words = _KIND_WORDS.get(error.kind, "failed")
        text = str(error)
        return f"{words}: {text}" if text and not text.startswith(words) else (text or words)
    if isinstance(error, SecretrunError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"operating system error: {error.strerror}"
    return "unexpected error"


def provider_bug(name: str, error: BaseException) -> ProviderError:
    """A provider that raised something other than a ``ProviderError``: in
    words, never by the exception's class or message (which may quote a
    value): an operating system error by its reason, anything else as the
    provider's own fault."""
    if isinstance(error, OSError) and error.strerror:
        why = f"operating system error: {error.strerror}"
    else:
        why = "an error in the provider's code, not an answer from its store"
    return ProviderError(f"provider '{name}' failed unexpectedly ({why})")


def in_words(error: BaseException) -> str:
    """What went wrong, for a message: an operating system error by its
    reason, a few common kinds by name in words, never the exception's class
    or its message (which may quote what was being read)."""
    if isinstance(error, UnicodeDecodeError):
        return "not valid UTF-8"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionError):
        return "the connection failed"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, ValueError):
        return "malformed content"
    return "an unexpected error"


def did_you_mean(word: object, choices) -> str:
    """``"; did you mean 'poll_interval'?"`` for a near miss, else "": a typo
    in a key or a type is told what it was probably meant to be."""
    if not isinstance(word, str):
        return ""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""
