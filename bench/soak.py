"""Soak: a watching supervisor over the ``file`` provider through 1,000
rotations, with a short poll interval so it runs in a few minutes.

    python -m bench.soak [--rotations 1000] [--poll 100ms] [--size BYTES] [--mask]

``--size`` makes every value that many bytes (a large certificate, say) and
``--mask`` turns ``mask_output`` on, so each value is registered with the
masker when the command gets it: with bounded generations the supervisor's
memory stays flat however many large values go by (issue 13).

Each rotation replaces the secret file atomically, then waits (bounded) for
the new child, so every change settles before the next: with debounce, one
restart is expected per rotation. The child is ``sh`` recording its PID and
then ``exec sleep``; the run reads each child's environment from
``/proc/<pid>/environ`` to check it got the new value.

Reported: restarts done against expected, rotation-to-new-child latency
(median, p99, max), the supervisor's RSS after the first child and at the
end (no growth expected), its open file descriptors likewise, and canary
checks on everything secretrun printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANARY = "canary-7f3a9c1e-d0n7-l34k-m3"     # tests/conftest.py's


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def child_value(pid: int) -> str:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return ""
    for item in env:
        if item.startswith(b"SECRET="):
            return item[7:].decode()
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rotations", type=int, default=1000)
    parser.add_argument("--poll", default="100ms")
    parser.add_argument("--size", type=int, default=0, help="bytes per value (default: a short value)")
    parser.add_argument("--mask", action="store_true", help="mask_output = true")
    parser.add_argument("--code", default=str(ROOT), help="the checkout to run (a baseline: another branch's)")
    args = parser.parse_args(argv)

    def value_of(i: int) -> str:
        head = f"{CANARY}-{i}"
        if args.size <= len(head):
            return head
        return head + "-" + os.urandom(args.size // 2).hex()[:args.size - len(head) - 1]


    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        store = tmpdir / "store"
        store.mkdir()
        secret = store / "secret"
        secret.write_text(value_of(0))
        starts = tmpdir / "starts.log"
        manifest = tmpdir / "secretrun.toml"
        manifest.write_text(f'version = 1\n[settings]\nwatch = true\npoll_interval = "{args.poll}"\n'
                            f'kill_timeout = "3s"\nmask_output = {"true" if args.mask else "false"}\n'
                            f'[providers.files]\ntype = "file"\npath = "{store}"\n'
                            '[env]\nSECRET = "${files:secret}"\n')
        child = ["/bin/sh", "-c", f'echo $$ >> "{starts}"; exec sleep 3600']
        err_path, out_path = tmpdir / "secretrun.err", tmpdir / "secretrun.out"
        env = {"PATH": os.environ["PATH"], "HOME": str(tmpdir), "LANG": "C.UTF-8", "PYTHONPATH": args.code}
        with open(err_path, "wb") as err, open(out_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "secretrun", "-m", str(manifest), "--log-level", "info",
                                     "--", *child], cwd=tmpdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, start_new_session=True)

        def pids():
            try:
                return [int(p) for p in starts.read_text().split()]
            except (OSError, ValueError):
                return []

        def wait_starts(count: int, timeout: float = 15.0) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if len(pids()) >= count:
                    return True
                time.sleep(0.005)
            return False

        try:
            if not wait_starts(1):
                raise SystemExit("the first child did not start")
            time.sleep(1.0)            # let the supervisor settle after its imports
            rss_start, fds_start = rss_kib(proc.pid), fds(proc.pid)
            latencies, missed, wrong = [], 0, 0
            samples = []                 # (rotation, RSS KiB) every tenth of the run
            started = time.monotonic()
            for i in range(1, args.rotations + 1):
                value = value_of(i)
                tmp_file = store / ".secret.tmp"
                tmp_file.write_text(value)
                t0 = time.monotonic()
                os.replace(tmp_file, secret)
                if not wait_starts(i + 1):
                    missed += 1
                    continue
                latencies.append(time.monotonic() - t0)
                pid = pids()[i]
                # Read the environment until sh has exec'd (the same PID) or a bounded time passed.
                got = ""
                for _ in range(200):
                    got = child_value(pid)
                    if got:
                        break
                    time.sleep(0.005)
                wrong += got != value
                if i % max(1, args.rotations // 10) == 0:
                    samples.append((i, rss_kib(proc.pid)))
            elapsed = time.monotonic() - started
            time.sleep(1.0)
            rss_end, fds_end = rss_kib(proc.pid), fds(proc.pid)
            restarts = len(pids()) - 1
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            for pid in pids():             # anything left behind, by its PID
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        output = err_path.read_text(errors="replace") + out_path.read_text(errors="replace")
        leaked = output.count(CANARY)
        logged = output.count("restarted the command")

    lat = sorted(latencies)
    print(f"soak: {args.rotations} rotations of a file secret ({len(value_of(1))} bytes each, mask_output "
          f"{'on' if args.mask else 'off'}), poll_interval {args.poll}, {elapsed:.0f} s")
    print(f"restarts: {restarts} done / {args.rotations} expected ({logged} logged); "
          f"missed {missed}; children with a wrong value: {wrong}")
    if lat:
        print(f"rotation -> new child: median {statistics.median(lat) * 1000:.0f} ms, "
              f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
    print(f"supervisor RSS: {rss_start / 1024:.1f} MiB after the first child, {rss_end / 1024:.1f} MiB at the end "
          f"({rss_end / rss_start:.2f}x); open fds {fds_start} -> {fds_end}")
    print("supervisor RSS by rotation: " + ", ".join(f"{i}: {kib / 1024:.1f}" for i, kib in samples) + " MiB")
    print(f"values leaked into secretrun's output: {leaked}")
    return 1 if leaked or missed or wrong or restarts != args.rotations else 0


if __name__ == "__main__":
    sys.exit(main())
