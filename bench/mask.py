"""mask_output at scale: 10,000 imported values, a command writing log lines.

    python -m bench.mask [--values 10000] [--mib 16]

The same ``secretrun --watch`` run over one manifest (the ``file`` provider,
one ``[[import]]`` of ``--values`` keys): ``mask_output = false`` (the
command writes straight to the file), ``mask_output = true`` with no values
(every byte relayed by secretrun, nothing to find: the unmasked baseline of
the target) and ``mask_output = true`` with the values (every byte through
the Aho-Corasick masker). The command is Python
writing ``--mib`` MiB of 100-byte log lines, flushed every 40 lines (4 KiB),
a few of them carrying a secret value; it times its own writing, which is
what masking costs it (a slow relay blocks the command on stdout).

Reported: the command's write throughput in each mode and their ratio
(target: masked >= 0.5x the unmasked relay), the whole run's wall time, and checks
that every value it printed came out masked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANARY = "canary-7f3a9c1e-d0n7-l34k-m3"

CHILD = r"""
import json, os, sys, time
mib, report = int(sys.argv[1]), sys.argv[2]
secret = os.environ.get("V00042", "no-values-here")
line = b"2026-01-01T00:00:00Z INFO request handled path=/api/v1/items status=200 latency_ms=12 id="
lines = [line + b"%08d\n" % i for i in range(40)]
block = b"".join(lines)
secret_block = block[:-200] + secret.encode() + b"\n" + block[-200 + len(secret) + 1:]
out = sys.stdout.buffer
count = mib * 1024 * 1024 // len(block)
start = time.perf_counter()
for i in range(count):
    out.write(secret_block if i % 100 == 0 else block)
    out.flush()
took = time.perf_counter() - start
open(report, "w").write(json.dumps({"bytes": count * len(block), "seconds": took}))
"""


def run(tmp: Path, values: int, mib: int, mask: bool) -> dict:
    store = tmp / "store"
    store.mkdir(exist_ok=True)
    (store / "all.json").write_text(json.dumps({f"V{i:05d}": f"{CANARY}-{i:05d}-{os.urandom(6).hex()}"
                                                for i in range(values)}))
    manifest = tmp / "secretrun.toml"
    manifest.write_text(f'version = 1\n[settings]\nwatch = true\npoll_interval = "1h"\n'
                        f'mask_output = {"true" if mask else "false"}\n'
                        f'[providers.f]\ntype = "file"\npath = "{store}"\n'
                        '[[import]]\nfrom = "${f:all.json}"\n')
    report = tmp / f"report-{mask}.json"
    out_path = tmp / f"out-{mask}.txt"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with open(out_path, "wb") as out:
        proc = subprocess.run([sys.executable, "-m", "secretrun", "-m", str(manifest), "--",
                               sys.executable, "-c", CHILD, str(mib), str(report)],
                              cwd=tmp, env=env, stdout=out, stderr=subprocess.PIPE, timeout=600)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"secretrun exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    got = json.loads(report.read_text())
    data = out_path.read_bytes()
    return {"rate": got["bytes"] / got["seconds"] / 2**20, "wall": wall, "bytes": len(data),
            "leaked": data.count(CANARY.encode()), "masks": data.count(b"*****")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--mib", type=int, default=16)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        # Best of three each, interleaved: the machine is shared.
        configs = [(args.values, False), (0, True), (args.values, True)]
        runs = [[] for _ in configs]
        for _ in range(3):
            for i, (values, mask) in enumerate(configs):
                runs[i].append(run(Path(tmp), values, args.mib, mask=mask))
        direct, relay, masked = (max(r, key=lambda x: x["rate"]) for r in runs)
    ratio = masked["rate"] / relay["rate"]
    print(f"mask_output with {args.values} values, the command writing {args.mib} MiB of log lines")
    print(f"{'(best of 3)':40}{'command MiB/s':>14}{'run wall s':>12}")
    print(f"{'mask_output = false (straight to file)':40}{direct['rate']:>14.1f}{direct['wall']:>12.2f}")
    print(f"{'mask_output = true, no values (relay)':40}{relay['rate']:>14.1f}{relay['wall']:>12.2f}")
    print(f"{f'mask_output = true, {args.values} values':40}{masked['rate']:>14.1f}{masked['wall']:>12.2f}")
    print(f"masked / unmasked relay: {ratio:.2f}x (target >= 0.5x); masked / straight to file: "
          f"{masked['rate'] / direct['rate']:.2f}x; run time {masked['wall'] / direct['wall']:.2f}x")
    print(f"values printed in clear: masked run {masked['leaked']}, unmasked run {direct['leaked']} "
          f"(masks written: {masked['masks']})")
    return 0 if masked["leaked"] == 0 and ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
