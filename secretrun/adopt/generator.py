"""New values: ``generate`` (the OS's CSPRNG), the alphabets, and the
character class of a simple ``pattern``, so ``rotate`` writes a value the
manifest accepts."""

from __future__ import annotations

import re
import secrets
import string
from typing import List, Optional, Tuple

from ..errors import Kind, Problem, ProblemReport
from ..manifest import EnvVar

DEFAULT_LENGTH = 32

ALPHABETS = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "base64url": string.ascii_letters + string.digits + "-_",
    # Printable ASCII without space and quotes, so a value survives shells,
    # dotenv files and connection strings unquoted.
    "ascii-printable": "".join(c for c in string.printable[:94] if c not in "\"'`\\"),
}


def generate(length: int = DEFAULT_LENGTH, alphabet: str = ALPHABETS["alnum"]) -> str:
    """A uniformly random value from ``secrets`` (the OS's CSPRNG)."""
    if length < 1:
        raise ValueError("length must be at least 1")
    if len(set(alphabet)) < 2:
        raise ValueError("an alphabet needs at least two different characters")
    chars = "".join(dict.fromkeys(alphabet))
    return "".join(secrets.choice(chars) for _ in range(length))


def alphabet_named(name: str) -> str:
    if name not in ALPHABETS:
        raise ValueError(f"unknown alphabet {name!r}: one of {', '.join(ALPHABETS)}")
    return ALPHABETS[name]


# ``^[A-Za-z0-9_-]{40,}$``, ``[a-f0-9]{64}``, ``^[[:alnum:]]+$`` is not Python:
# only a single character class with a repeat is understood.
_SIMPLE = re.compile(r"\^?\[((?:\\.|[^\]\\])+)\](?:\{(\d+)(?:(,)(\d*))?\}|(\+)|(\*))\$?\Z")


def class_of(pattern: str) -> Optional[Tuple[str, int, Optional[int]]]:
    """(alphabet, least length, most length) of a pattern that is one
    character class repeated, else None."""
    match = _SIMPLE.match(pattern)
    if not match:
        return None
    body, low, comma, high, plus, star = match.groups()
    if body.startswith("^"):
        return None  # a negated class: no alphabet to draw from
    chars: List[str] = []
    i = 0
    items = []
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            if body[i + 1] in "dws":
                return None
            items.append(body[i + 1])
            i += 2
        else:
            items.append(body[i])
            i += 1
    j = 0
    while j < len(items):
        if j + 2 < len(items) and items[j + 1] == "-":
            start, end = ord(items[j]), ord(items[j + 2])
            if start > end:
                return None
            chars += [chr(c) for c in range(start, end + 1)]
            j += 3
        else:
            chars.append(items[j])
            j += 1
    alphabet = "".join(dict.fromkeys(chars))
    if len(alphabet) < 2:
        return None
    if plus:
        return alphabet, 1, None
    if star:
        return alphabet, 0, None
    least = int(low)
    most = (int(high) if high else None) if comma else least
    return alphabet, least, most


def value_for(var: EnvVar, length: Optional[int], alphabet: Optional[str]) -> str:
    """A new value for ``var``: its ``pattern``'s character class and length
    when it is a simple one, else ``alphabet``; at least ``min_length`` and
    ``DEFAULT_LENGTH`` characters unless ``length`` says otherwise."""
    chars = alphabet or ALPHABETS["alnum"]
    least, most = 1, None
    if var.pattern is not None:
        simple = class_of(var.pattern.pattern)
        if simple is not None:
            chars = alphabet or simple[0]
            least, most = max(1, simple[1]), simple[2]
    want = length if length is not None else max(DEFAULT_LENGTH, least, var.min_length or 0)
    if length is None and most is not None:
        want = min(want, most)
    value = generate(want, chars)
    if var.pattern is not None and not var.pattern.fullmatch(value):
        raise ProblemReport([Problem(Kind.INVALID, "cannot generate a value that matches its 'pattern'; "
                                     "give --alphabet and --length", variable=var.name)], title="rotate refused")
    if var.min_length and len(value) < var.min_length:
        raise ProblemReport([Problem(Kind.INVALID, f"--length {len(value)} is shorter than its min_length "
                                     f"{var.min_length}", variable=var.name)], title="rotate refused")
    return value
