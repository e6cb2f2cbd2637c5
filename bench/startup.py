"""Start-up: ``secretrun -- /bin/true`` on a 20-variable dotenv manifest,
against ``python -c pass`` and python-dotenv's ``dotenv run -- /bin/true``,
same interpreter, interleaved runs, medians.

    python -m bench.startup [--runs 40]

Target (issue #2): at most 3x ``python -c pass``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)


def timed(argv, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, ".env"), "w") as env:
            for i in range(20):
                env.write(f'VAR_{i}="value-{i}-{"x" * 24}"\n')
        with open(os.path.join(tmp, "secretrun.toml"), "w") as manifest:
            manifest.write('version = 1\n[providers.local]\ntype = "dotenv"\n[env]\n')
            for i in range(20):
                manifest.write(f'VAR_{i} = "${{local:VAR_{i}}}"\n')
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "secretrun -- /bin/true": [os.path.join(BIN, "secretrun"), "-m", "secretrun.toml", "--", "/bin/true"],
        }
        dotenv = os.path.join(BIN, "dotenv")
        if os.path.exists(dotenv):
            cases["dotenv run -- /bin/true"] = [dotenv, "-f", ".env", "run", "--", "/bin/true"]
        for argv in cases.values():  # warm the page cache and .pyc files
            timed(argv, tmp)
        samples = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                samples[name].append(timed(argv, tmp))
    base = statistics.median(samples["python -c pass"])
    print(f"start-up, median of {args.runs} interleaved runs ({sys.version.split()[0]}, {os.cpu_count()} cores)")
    print(f"{'command':28} {'median':>9} {'vs python -c pass':>18}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:28} {median * 1000:7.1f}ms {median / base:17.2f}x")


if __name__ == "__main__":
    main()
