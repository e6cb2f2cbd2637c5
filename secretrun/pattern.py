"""``pattern``: a variable's value must match a regular expression, checked
in time linear in the value, whatever the expression.

The dialect is RE2's (google-re2): Python's ``re`` syntax for everything
that can run in linear time, including classes, repetition counts, named
groups ``(?P<n>...)`` and flags ``(?i)``; no backreferences (``\\1``), no
lookaround (``(?=``, ``(?!``, ``(?<=``), no ``\\Z`` (write ``\\z`` or ``$``).
A pattern must match the whole value (``fullmatch``). Python's ``re``
backtracks: ``^([A-Za-z0-9]+)*$`` against 41 hostile bytes ran for hours;
RE2 answers in microseconds, so a value a store returns cannot stall
``check`` or a supervisor's refresh.

``re2`` is imported only for manifests that use ``pattern``.
"""

from __future__ import annotations

from typing import Any

# RE2's memory budget for one compiled pattern; a pattern that needs more
# (``a{1000}{1000}``) is refused when the manifest is loaded.
MAX_MEM = 8 << 20


class PatternError(ValueError):
    """The pattern is not valid RE2 syntax (or too large)."""


def compile_pattern(text: Any) -> Any:
    """The compiled pattern (``.pattern``, ``.fullmatch``), or ``PatternError``."""
    if not isinstance(text, str):
        raise PatternError("must be a string")
    import re2

    options = re2.Options()
    options.log_errors = False      # RE2 would print its own error on stderr
    options.max_mem = MAX_MEM
    try:
        return re2.compile(text, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"{reason} (RE2 syntax: no backreferences or lookaround)") from None
    except (TypeError, ValueError) as exc:
        raise PatternError(str(exc)) from None
