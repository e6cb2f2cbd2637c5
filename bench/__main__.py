"""Run every benchmark in turn: ``python -m bench`` (or ``python -m bench startup aws``).

Each module is a standalone script printing its own table with ratios
against a baseline measured in the same run."""

import pkgutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SKIP = {"__main__", "latency_proxy"}


def main() -> int:
    names = sys.argv[1:] or sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name not in SKIP)
    failed = 0
    for name in names:
        print(f"\n== bench.{name}", flush=True)
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"], cwd=HERE.parent)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
