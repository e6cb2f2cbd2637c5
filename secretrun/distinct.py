"""``secretrun check -p production --distinct-from development``: every
variable must hold a different value in the two profiles.

Values are never compared directly, nor kept: each value of the first
resolution is reduced to an HMAC-SHA256 under a random key that lives in this
process's memory only, then the first resolution is dropped, the second is
resolved and reduced alike, and the digests are compared. A digest cannot be
reversed without the key, and the key dies with the process.
"""

from __future__ import annotations

import hmac
from typing import Dict, List, Mapping, Optional, Union

from .childenv import value_bytes
from .errors import Kind, Problem


class Digests:
    """A profile's values, as keyed digests, with each variable's source."""

    def __init__(self, key: bytes, profile: Optional[str], env: Mapping[str, str],
                 files: Mapping[str, bytes], managed, sources: Mapping[str, str]) -> None:
        self.key = key
        self.profile = profile
        self.sources = {name: sources.get(name, "literal") for name in managed}
        self.digests: Dict[str, bytes] = {}
        for name in managed:
            value: Union[str, bytes, None] = files.get(name, env.get(name))
            if value is None:
                continue
            self.digests[name] = hmac.new(key, value_bytes(value), "sha256").digest()


def same_values(first: Digests, second: Digests) -> List[Problem]:
    """A problem (65) for each variable with the same value in both profiles,
    naming both references."""
    problems = []
    for name, digest in first.digests.items():
        other = second.digests.get(name)
        if other is not None and hmac.compare_digest(digest, other):
            problems.append(Problem(
                Kind.INVALID, f"has the same value in profile '{first.profile or 'base'}' "
                f"({first.sources[name]}) and in profile '{second.profile or 'base'}' ({second.sources[name]})",
                variable=name, reference=f"{first.sources[name]} / {second.sources[name]}"))
    return problems
