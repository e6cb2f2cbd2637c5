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


def timed(argv, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def plain_interpreter(tmp: str) -> str:
    """A throwaway venv that sees this checkout and the current venv's packages
    through one plain ``.pth``. The development venv's editable install runs a
    setuptools import finder at every interpreter start (``pathlib``, ``re``:
    ~20 ms), which a user's regular install does not have; it would inflate
    the baseline and flatter the ratio."""
    import site
    import venv

    target = os.path.join(tmp, "venv")
    venv.EnvBuilder(with_pip=False).create(target)
    python = os.path.join(target, "bin", "python")
    purelib = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                      text=True).strip()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # pip byte-compiles what it installs; a checkout under PYTHONDONTWRITEBYTECODE
    # would otherwise compile every module from source at every start.
    import compileall

    compileall.compile_dir(os.path.join(root, "secretrun"), quiet=1)
    with open(os.path.join(purelib, "deps.pth"), "w") as pth:
        pth.write("\n".join([root, *site.getsitepackages()]) + "\n")
    return python


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        python = plain_interpreter(tmp)
        with open(os.path.join(tmp, ".env"), "w") as env:
            for i in range(20):
                env.write(f'VAR_{i}="value-{i}-{"x" * 24}"\n')
        os.chmod(os.path.join(tmp, ".env"), 0o600)  # as a real one should be: no warning
        with open(os.path.join(tmp, "secretrun.toml"), "w") as manifest:
            manifest.write('version = 1\n[providers.local]\ntype = "dotenv"\n[env]\n')
            for i in range(20):
                manifest.write(f'VAR_{i} = "${{local:VAR_{i}}}"\n')
        # Each as its console script does it: import the entry point, call it.
        # Two setups: a clean interpreter (what a user's install gets), and
        # this development venv, as the protocol measures it (its
        # baseline carries the editable-install finder, ~20 ms).
        ours = "import sys; from secretrun.launch import main; sys.exit(main())"
        theirs = "import sys; from dotenv.__main__ import cli; sys.exit(cli())"
        cases = {}
        for label, interpreter in (("clean", python), ("dev venv", sys.executable)):
            cases[(label, "python -c pass")] = [interpreter, "-c", "pass"]
            cases[(label, "secretrun -- /bin/true")] = [interpreter, "-c", ours, "-m", "secretrun.toml", "--",
                                                        "/bin/true"]
            cases[(label, "dotenv run -- /bin/true")] = [interpreter, "-c", theirs, "-f", ".env", "run", "--",
                                                         "/bin/true"]
        for argv in cases.values():  # warm the page cache and .pyc files
            timed(argv, tmp)
        samples = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                samples[name].append(timed(argv, tmp))
    print(f"start-up, median of {args.runs} interleaved runs ({sys.version.split()[0]}, {os.cpu_count()} cores)")
    print(f"{'setup':9} {'command':26} {'median':>9} {'vs python -c pass':>18}")
    for (label, name), values in samples.items():
        base = statistics.median(samples[(label, "python -c pass")])
        median = statistics.median(values)
        print(f"{label:9} {name:26} {median * 1000:7.1f}ms {median / base:17.2f}x")


if __name__ == "__main__":
    main()
