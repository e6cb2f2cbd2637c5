"""Units in one grammar: durations and signal names, as the manifest, the
provider options and the command line all write them.

A duration is a number of seconds (a TOML number) or a string of one or more
``<number><unit>`` parts, units ``ms``, ``s``, ``m``, ``h`` and ``d``:
``"250ms"``, ``"30s"``, ``"1h30m"``, ``"90d"``. A bare string number is not
a duration (``"5"``: five what?). A signal is a number or a name, with or
without ``SIG``, in any case.
"""

from __future__ import annotations

import signal
from typing import Any, Optional

_DURATION = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"   # compiled on first use: most manifests use defaults
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> Optional[float]:
    """Seconds, from a number or a duration string; None if malformed or negative."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if not isinstance(value, str) or not value:
        return None
    import re

    total, pos = 0.0, 0
    for m in re.finditer(_DURATION, value):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(value) else None


def parse_signal(value: Any) -> Optional[int]:
    """A signal number from a number or a name (``"SIGHUP"``, ``"hup"``); None if unknown."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value in signal.valid_signals() else None
    if not isinstance(value, str):
        return None
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(signal, name, None)
    return int(sig) if isinstance(sig, signal.Signals) else None
