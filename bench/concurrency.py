"""What the per-store benchmarks share: sequential against concurrent
resolutions, interleaved over rounds, printed as one table of medians."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Tuple

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
