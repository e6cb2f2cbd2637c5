"""What the per-store benchmarks share: sequential against concurrent
resolutions, interleaved over rounds, printed as one table of medians."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Tuple

from bench.latency_proxy import LatencyProxy

PHASES = ("cold", "warm")


def arguments(prog: str) -> argparse.Namespace:
    """The options every per-store benchmark takes (``--proxies`` is the
    child process that holds the latency proxies)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--secrets", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rtt", type=float, default=0.020)
    parser.add_argument("--proxies", help=argparse.SUPPRESS)
    return parser.parse_args()


def cold_then_warm(provider: Any, sids: list) -> Tuple[float, float]:
    """Seconds for a fresh provider's first resolution of every id through
    the resolver's ``fetch_all``, then its second; closes the provider."""
    from secretrun.resolver import fetch_all

    times = []
    try:
        for _ in range(2):
            start = time.perf_counter()
            snapshot = fetch_all({provider.name: provider}, sids, retries=0)
            times.append(time.perf_counter() - start)
            failed = [out for out in snapshot.values() if not hasattr(out, "value")]
            if failed:
                raise SystemExit(f"{len(failed)} fetches failed, e.g. {failed[0]}")
    finally:
        provider.close()
    return times[0], times[1]


def interleave(one_run: Callable[[int], Tuple[float, float]], modes: Mapping[str, int],
               rounds: int) -> Dict[Tuple[str, str], List[float]]:
    """``one_run(in_flight) -> (cold, warm)`` seconds, for every mode in
    turn each round, so that drift hits every mode alike."""
    times: Dict[Tuple[str, str], List[float]] = {(m, p): [] for m in modes for p in PHASES}
    for _ in range(rounds):
        for mode, concurrency in modes.items():
            for phase, seconds in zip(PHASES, one_run(concurrency)):
                times[mode, phase].append(seconds)
    return times


def table(modes: Mapping[str, int], times: Mapping[Tuple[str, str], List[float]]) -> None:
    print(f"{'phase':<6} {'mode':<12} {'in flight':>9} {'median':>9} {'best':>9} {'vs sequential':>14}")
    for phase in PHASES:
        base = statistics.median(times["sequential", phase])
        for mode, concurrency in modes.items():
            runs = times[mode, phase]
            median = statistics.median(runs)
            print(f"{phase:<6} {mode:<12} {concurrency:>9} {median * 1000:>7.0f}ms {min(runs) * 1000:>7.0f}ms "
                  f"{base / median:>13.1f}x")


# --- the helper processes: the store's fake and the network's latency proxies ---

ROOT = Path(__file__).resolve().parent.parent


def _spawn(argv: list) -> tuple:
    """A helper process that prints one JSON line, then serves until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()
    if not line:
        stop(proc)
        raise SystemExit(f"{argv[0]} did not start")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def proxies(ports: list, rtt: float) -> None:
    """The network, in its own process: one latency proxy per port. A proxy
    sharing a process (and its GIL) with the client or the server would add
    its own scheduling delays to the round trip under concurrency."""
    running = [LatencyProxy("127.0.0.1", int(port), rtt).__enter__() for port in ports]
    print(json.dumps([proxy.port for proxy in running]), flush=True)
    sys.stdin.read()
    # The loops end with the process: stopping them with connections still
    # open only makes asyncio print its complaints.
    os._exit(0)


def seeded_server(module: str, values: dict) -> tuple:
    """A wire-level fake store (``tests.servers.X --secrets FILE``) holding
    ``values``, and the JSON line it printed (its ports, its credentials)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as seed:
        json.dump(values, seed)
    try:
        return _spawn([module, "--secrets", seed.name])
    finally:
        os.unlink(seed.name)
