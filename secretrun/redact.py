"""The one redaction engine: secretrun's own log lines (``Secrets``, called
on text) and the command's output under ``mask_output`` (``Masker``, on a
byte stream) find secret values the same way.

What is found. Every value of at least ``MIN_LENGTH`` characters, and its
common encodings, each as a value of its own (``variants``):

- the value as UTF-8, and with ``\\n`` turned into ``\\r\\n`` (a terminal's
  output processing does that);
- base64 (standard alphabet) in the three alignments the value can take
  inside a longer encoded text: the characters that depend only on the
  value's own bytes, so ``base64(prefix + value + suffix)`` is found too;
- URL-encoded (``%2F``; ``+`` for spaces as well) and JSON-escaped
  (``\\"``, ``\\n``, ``\\u00e9`` or raw UTF-8), when these differ from the value.

Encodings are registered for values up to ``ENCODED_MAX`` bytes (a 300 kB
certificate is masked as itself, not as base64 of itself).

How. All patterns go into one Aho-Corasick automaton (``ahocorasick_rs``,
Rust, linear in the text whatever the number of values; imported the first
time something is redacted, never on the exec path). Matches may overlap:
the union of all of them is masked, so two values overlapping in the output
leave nothing in clear. A value longer than ``PIECE`` bytes is found by
anchors, ``PIECE``-byte pieces of it every ``PIECE`` bytes (every
``SPARSE_STRIDE`` bytes past ``DENSE_MAX``, to keep the automaton small),
and each anchor's match is extended byte by byte over the value to either
side: the whole value is masked, and so is any fragment of it that holds an
anchor (at least ``2 * PIECE`` bytes, ``SPARSE_STRIDE + PIECE`` for long
values).

Memory. Values come in generations: ``add`` pins values for the whole run
(the first resolution, provider credentials); ``deliver`` adds the set a
command was given, and only the last ``GENERATIONS`` deliveries are kept (a
restarted command's predecessor may still print an old value for a while).
Each delivery compiles only the values not already compiled, so a rotation
of one secret among 10,000 costs one tiny automaton; the groups are merged
again when there are more than ``MAX_GROUPS``.
"""

from __future__ import annotations

import _thread
from typing import Any, Dict, Iterable, List, Optional, Tuple

MASK = "*****"
MASK_BYTES = MASK.encode()
# Shorter values would mask ordinary words ("1", "true", "443"); a value that
# short is not secret-grade anyway.
MIN_LENGTH = 4
PIECE = 32
DENSE_MAX = 4096
SPARSE_STRIDE = 512
ENCODED_MAX = 4096
GENERATIONS = 3
MAX_GROUPS = 8
# Bytes already written that a later match may start in: enough to hold an
# anchor of any value, so a value cut by a pause is still found whole.
CONTEXT = SPARSE_STRIDE + 2 * PIECE

Interval = Tuple[int, int]


def _to_bytes(value: Any) -> Optional[bytes]:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return None


def variants(raw: bytes) -> List[bytes]:
    """The forms of one value that are looked for (see the module's doc)."""
    out = {raw}
    if b"\n" in raw:
        out.add(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    if len(raw) <= ENCODED_MAX:
        import base64
        import json
        from urllib.parse import quote, quote_plus

        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw)
            # Only the characters made of the value's own bits.
            out.add(encoded[-(-8 * shift // 6):8 * (shift + len(raw)) // 6])
        out.add(quote(raw, safe="").encode())
        out.add(quote_plus(raw, safe="").encode())
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            out.add(json.dumps(text)[1:-1].encode())
            out.add(json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8", "surrogateescape"))
    return [v for v in out if len(v) >= MIN_LENGTH]


def _anchors(value: bytes) -> List[int]:
    if len(value) <= PIECE:
        return [0]
    stride = PIECE if len(value) <= DENSE_MAX else SPARSE_STRIDE
    return list(range(0, len(value) - PIECE + 1, stride))


def _common_prefix(a: bytes, i: int, b: bytes, j: int) -> int:
    """How many bytes ``a[i:]`` and ``b[j:]`` share at their start."""
    lo, hi = 0, min(len(a) - i, len(b) - j)
    va, vb = memoryview(a), memoryview(b)
    if va[i:i + hi] == vb[j:j + hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if va[i:i + mid] == vb[j:j + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, i: int, b: bytes, j: int) -> int:
    """How many bytes ``a[:i]`` and ``b[:j]`` share at their end."""
    lo, hi = 0, min(i, j)
    va, vb = memoryview(a), memoryview(b)
    if va[i - hi:i] == vb[j - hi:j]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if va[i - mid:i] == vb[j - mid:j]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class Group:
    """Some values, compiled into one automaton. Immutable."""

    def __init__(self, values: Iterable[bytes]) -> None:
        from bisect import bisect_right

        import ahocorasick_rs

        self._bisect = bisect_right     # not imported at module level: the exec path loads this module
        self.values: List[bytes] = list(dict.fromkeys(values))
        owners: Dict[bytes, List[Tuple[int, int]]] = {}
        for vid, value in enumerate(self.values):
            for off in _anchors(value):
                owners.setdefault(value[off:off + PIECE], []).append((vid, off))
        self._keys = list(owners)
        self._owners = [owners[k] for k in self._keys]
        # The first one and two bytes of every key: a cheap test before the
        # bisection in ``continues`` (the masker asks it for every tail).
        self.heads = {k[:1] for k in self._keys} | {k[:2] for k in self._keys}
        self._sorted = sorted(self._keys)
        self._automaton = ahocorasick_rs.BytesAhoCorasick(
            self._keys, matchkind=ahocorasick_rs.MatchKind.Standard,
            implementation=ahocorasick_rs.Implementation.ContiguousNFA)

    def find(self, buf: bytes) -> List[Interval]:
        """Where values (or anchored fragments of long ones) occur in ``buf``."""
        found: List[Interval] = []
        reach: Dict[int, Interval] = {}
        for index, start, end in self._automaton.find_matches_as_indexes(buf, overlapping=True):
            for vid, off in self._owners[index]:
                value = self.values[vid]
                if len(value) == end - start:
                    found.append((start, end))
                    continue
                seen = reach.get(vid)
                if seen is not None and seen[0] <= start and end <= seen[1]:
                    continue        # the same occurrence, by another anchor
                lo = start - _common_suffix(buf, start, value, off)
                hi = end + _common_prefix(buf, end, value, off + end - start)
                reach[vid] = (lo, hi)
                found.append((lo, hi))
        return found

    def continues(self, tail: bytes) -> bool:
        """Whether ``tail`` is the start of a key (and not a whole one)."""
        i = self._bisect(self._sorted, tail)
        return i < len(self._sorted) and self._sorted[i].startswith(tail)


def _merge(intervals: List[Interval]) -> List[Interval]:
    merged: List[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


class Secrets:
    """The values to hide, for logs and output alike. Callable on text."""

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self._pinned: Dict[bytes, None] = {}
        self._deliveries: List[frozenset] = []
        self._groups: List[Group] = []
        self._heads: set = set()
        self._compiled: set = set()
        self._changes = 0             # bumped by add/deliver: groups() rebuilds only then
        self._built_at = 0
        self._lock = _thread.allocate_lock()
        self.add(values)

    # --- registering ---

    def add(self, values: Iterable[Any]) -> None:
        """Values hidden for the rest of the run."""
        with self._lock:
            for value in values:
                raw = _to_bytes(value)
                if raw is not None and len(raw) >= MIN_LENGTH and raw not in self._pinned:
                    self._pinned[raw] = None
                    self._changes += 1

    def deliver(self, values: Iterable[Any]) -> None:
        """The values a command was just given: a new generation (a no-op
        when it is the same set as the last one)."""
        raws = frozenset(r for r in map(_to_bytes, values) if r is not None and len(r) >= MIN_LENGTH)
        with self._lock:
            if self._deliveries and self._deliveries[-1] == raws:
                return
            self._deliveries = (self._deliveries + [raws])[-GENERATIONS:]
            self._changes += 1

    def __bool__(self) -> bool:
        return bool(self._pinned) or any(self._deliveries)

    def wanted(self) -> set:
        """Every raw value currently to be hidden."""
        wanted = set(self._pinned)
        for delivered in self._deliveries:
            wanted |= delivered
        return wanted

    def groups(self) -> List[Group]:
        """The compiled groups, brought up to date: new values compile into
        a group of their own; past ``MAX_GROUPS``, or when values were
        dropped, everything recompiles into one."""
        if self._built_at == self._changes:
            return self._groups
        with self._lock:
            self._built_at = self._changes
            wanted = self.wanted()
            if wanted == self._compiled:
                return self._groups
            fresh = wanted - self._compiled
            if len(self._groups) >= MAX_GROUPS or len(self._compiled - wanted) > len(wanted):
                self._groups, self._compiled, fresh = [], set(), wanted
            found: Dict[bytes, None] = {}
            for raw in fresh:
                found.update(dict.fromkeys(variants(raw)))
            if found:
                self._groups = self._groups + [Group(found)]
            self._compiled = self._compiled | fresh
            self._heads = set().union(*(g.heads for g in self._groups))
            return self._groups

    # --- finding ---

    def intervals(self, buf: bytes) -> List[Interval]:
        """Merged spans of ``buf`` to hide."""
        found: List[Interval] = []
        for group in self.groups():
            found += group.find(buf)
        return _merge(found)

    @property
    def heads(self) -> set:
        """The first one and two bytes of every pattern."""
        return self._heads

    def continues(self, tail: bytes) -> bool:
        """Whether ``tail`` is a proper prefix of some pattern."""
        if tail[:2] not in self._heads:
            return False
        return any(group.continues(tail) for group in self._groups)

    def redact_bytes(self, data: bytes) -> bytes:
        if not self:
            return data
        out: list = []
        pos = 0
        for start, end in self.intervals(data):
            out += (data[pos:start], MASK_BYTES)
            pos = end
        out.append(data[pos:])
        return b"".join(out)

    def __call__(self, text: str) -> str:
        """``text`` with every value (and encoding) replaced by ``MASK``."""
        if not self or not text:
            return text
        data = text.encode("utf-8", "surrogateescape")
        hidden = self.redact_bytes(data)
        return text if hidden == data else hidden.decode("utf-8", "replace")

    def fields(self, value: Any) -> Any:
        """A log record's field, strings redacted before it is serialised
        (a JSON-escaped value would not be found after ``json.dumps``)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.fields(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.fields(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self(str(value))


class Masker:
    """Streaming masking of one byte stream.

    ``feed`` returns what can be written now. A tail that could be the start
    of a value is held back; ``release`` (after a quiet period, or at the
    end) lets it go, as ``MASK`` when it is at least ``MIN_LENGTH`` long.
    Whatever was written stays as context: a value whose start was released
    before a pause is still found when its rest arrives, and its rest is
    masked (without a second ``MASK`` when the first part went out as one).
    """

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self._context = b""       # written already; a match may start here
        self._held = b""          # not written yet
        self._masked_to_end = False   # the last bytes written were a MASK

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def feed(self, data: bytes) -> bytes:
        if not self.secrets:
            return self._held_then(data)
        buf = self._context + self._held + data
        lo = len(self._context)
        spans = [s for s in self.secrets.intervals(buf) if s[1] > lo]
        cut = self._hold_point(buf, lo)
        out: List[bytes] = []
        pos = lo
        masked_to_end = self._masked_to_end
        for start, end in spans:
            if start >= cut:
                break
            if start > pos:
                out.append(buf[pos:start])
                masked_to_end = False
            if not (start < lo and masked_to_end):
                out.append(MASK_BYTES)
            pos = min(end, cut)
            masked_to_end = True
        if pos < cut:
            out.append(buf[pos:cut])
            masked_to_end = False
        self._masked_to_end = masked_to_end
        self._held = buf[cut:]
        self._context = buf[max(0, cut - CONTEXT):cut]
        return b"".join(out)

    def _held_then(self, data: bytes) -> bytes:
        held, self._held = self._held, b""
        return held + data

    def _partial(self, buf: bytes) -> int:
        """Where the longest suffix of ``buf`` that is a proper prefix of
        some pattern starts (``len(buf)`` when none is). Patterns are at most
        ``PIECE`` bytes long, so is the suffix."""
        n = len(buf)
        heads = self.secrets.heads
        continues = self.secrets.continues
        for i in range(max(0, n - PIECE + 1), n):
            if buf[i:i + 2] in heads and continues(buf[i:]):
                return i
        return n

    def _hold_point(self, buf: bytes, lo: int) -> int:
        """Where the undecided tail starts: a partial match, which may still
        grow into a value (one that started in what was already written
        holds all the new bytes)."""
        return max(self._partial(buf), lo)

    def release(self) -> bytes:
        """Everything still held (a quiet period, or the end of the stream):
        a partial match of at least ``MIN_LENGTH`` bytes (counting what was
        written of it before) goes out as ``MASK``, once."""
        held, self._held = self._held, b""
        if not held:
            return b""
        buf = self._context + held
        start = self._partial(buf) if self.secrets else len(buf)
        self._context = buf[-CONTEXT:]
        if len(buf) - start >= MIN_LENGTH:
            continuing = start < len(buf) - len(held) and self._masked_to_end
            self._masked_to_end = True
            return b"" if continuing else MASK_BYTES
        self._masked_to_end = False
        return held


def mask_text(text: str, values: Iterable[str]) -> str:
    """Mask a complete text (tests and one-shot use)."""
    return Secrets(values)(text)


__all__ = ["Secrets", "Masker", "Group", "variants", "mask_text", "MASK", "MASK_BYTES", "MIN_LENGTH"]
