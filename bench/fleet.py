"""A fleet of watching instances against each store's rate limit, simulated
on a virtual clock with the real poller (``secretrun.watch.Poller``) and its
throttling back-off (``secretrun.backoff``).

    python -m bench.fleet [--sizes 100,1000,10000] [--secrets 20] [--stores all] [--seed 1]

Each instance is a real ``Poller``; the supervisor's loop is replaced by an
event queue (one entry per instance: its next poll), and a refresh by what
``Session.refresh`` sends: the store's cheapest probe for each secret
(batched where the API allows), stopping at the first throttled answer,
with no retry inside the refresh but the SDK's own (AWS: one). The store is
a token bucket at its documented rate; a throttled request takes no token
(Key Vault documents this; the others are assumed alike). The poller gets
the same ``ResolutionError`` a real refresh raises, so its back-off, jitter
and logging are the code that runs in production.

Three runs per store and fleet size:

- **default**: every instance at the default ``poll_interval`` (30 s),
  phases spread over one interval. Where that asks more than the limit, the
  fleet has to find the limit by itself: the steady-state rate (last third
  of the run) against the limit, the share of requests throttled there
  (beside the same fleet as before this back-off, ``baseline``), and
  how long until no window of the settled interval had more than 10% of
  its requests refused.
- **episode**: the fleet at the interval recommended for it (half the limit
  at most); after 3 intervals the store's limit drops to a quarter (another
  tenant, a regional incident) for 10 intervals, then 20 more intervals.
  How long until no more than 10% of the requests are refused, how long
  after the episode until 95% of the instances are back at
  ``poll_interval``, and the wave index (``wave_index``: near 1 when
  instances poll independently, 20 in lockstep).
- **rotation**: one secret rotates after one interval; every instance
  sees it at its next poll, confirms it after ``debounce``, and restarts after
  ``splay`` (here 0 and 4 intervals): peak restarts per second.

Nothing here talks to a store: the whole fleet is one process, one thread.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretrun.errors import Kind, Problem, ResolutionError, Throttled  # noqa: E402
from secretrun.watch import Poller  # noqa: E402


class Store(NamedTuple):
    """One store's polling cost and its documented limit."""

    key: str
    name: str
    probe: str             # the request one poll sends per secret (or per batch)
    batch: int             # secrets one probe request covers
    rate: float            # the documented limit, requests per second
    window: float          # the limit's window: the bucket holds rate × window
    limit_text: str        # as documented, in the store's own unit
    sdk_attempts: int = 1  # attempts the SDK makes for one throttled request

    def calls(self, secrets: int) -> int:
        return math.ceil(secrets / self.batch)


STORES: Dict[str, Store] = {s.key: s for s in (
    Store("vault", "Vault / OpenBao", "KV v2 metadata GET", 1, 1000.0, 1.0,
          "a rate-limit quota (here 1,000/s on the mount)"),
    Store("aws-sm", "AWS Secrets Manager", "DescribeSecret", 1, 10_000.0, 1.0,
          "10,000/s per region (DescribeSecret + GetSecretValue)", sdk_attempts=2),
    Store("aws-ssm", "AWS SSM Parameter Store", "GetParameters (10 names)", 10, 40.0, 1.0,
          "40/s per region (standard throughput)", sdk_attempts=2),
    Store("gcp", "GCP Secret Manager", "AccessSecretVersion", 1, 1500.0, 60.0,
          "90,000 accesses/min per project"),
    Store("azure", "Azure Key Vault", "secret GET", 1, 400.0, 10.0,
          "4,000 transactions/10 s per vault"),
)}

NICE = (30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400)
DEFAULT_INTERVAL = 30.0


def needed_interval(store: Store, instances: int, secrets: int, share: float = 1.0) -> float:
    """The shortest interval at which the fleet's polls use ``share`` of the limit."""
    return instances * store.calls(secrets) / (store.rate * share)


def recommended_interval(store: Store, instances: int, secrets: int) -> float:
    """The first round interval (30 s at least) that keeps polling under
    half the limit: room for fetches after a rotation, restarts, and
    everything else that uses the same quota."""
    need = needed_interval(store, instances, secrets, share=0.5)
    return float(next((n for n in NICE if n >= need), math.ceil(need / 3600) * 3600))


class Bucket:
    """A token bucket: ``rate`` tokens a second, at most ``rate × window``;
    ``scale`` (a function of time) lowers the rate during an episode."""

    def __init__(self, rate: float, window: float, scale: Callable[[float], float] = lambda t: 1.0) -> None:
        self.rate, self.window, self.scale = rate, window, scale
        self.tokens = rate * window
        self.last = 0.0

    def take(self, now: float, wanted: int) -> int:
        """Up to ``wanted`` requests at ``now``: how many got a token."""
        rate = self.rate * self.scale(now)
        self.tokens = min(rate * self.window, self.tokens + (now - self.last) * rate)
        self.last = now
        got = min(wanted, int(self.tokens))
        self.tokens -= got
        return got


class _Quiet:
    """The poller's log: the simulation counts, it does not print."""

    def __init__(self) -> None:
        self.warnings = 0

    def warning(self, msg, **_): self.warnings += 1
    def info(self, msg, **_): pass
    def debug(self, msg, **_): pass
    def error(self, msg, **_): pass


class _Rendered(NamedTuple):
    """What a refresh returns (a ``ChildEnv``), as far as the poller looks at it."""

    env: Dict[str, str]
    files: Dict[str, bytes]
    on_change: Dict[str, str]
    sources: Dict[str, str]


class _Settings(NamedTuple):
    poll_interval: float
    on_change: str = "restart"
    max_stale: Optional[float] = None
    debounce: Optional[float] = None


class Run(NamedTuple):
    """Per-second counts of one simulation."""

    seconds: int
    sent: List[int]          # requests sent (throttled included, SDK retries included)
    throttled: List[int]
    limit: List[float]       # the bucket's rate that second
    restarts: List[int]
    polls: List[int]
    slowed: List[int]        # instances polling slower than poll_interval
    warnings: int


def simulate(store: Store, instances: int, secrets: int, interval: float, duration: float, seed: int = 1,
             episode: Optional[Tuple[float, float, float]] = None, rotate_at: Optional[float] = None,
             splay: float = 0.0, baseline: bool = False) -> Run:
    """Run ``instances`` real pollers for ``duration`` virtual seconds.

    ``episode``: (start, end, factor): the limit is ``factor`` × itself in
    between. ``rotate_at``: one secret changes then; each instance restarts
    its command after ``splay`` × random once its poller decides to.
    ``baseline``: as before throttling had its own error: a refresh asks
    every secret whatever the answers, and the poller sees an outage (its
    backoff: ×2 per failure, at most max(poll_interval, 60 s)).
    """
    rng = random.Random(seed)
    clock = [0.0]
    seconds = int(duration) + 1
    sent, throttled, restarts, polls = [0] * seconds, [0] * seconds, [0] * seconds, [0] * seconds
    slowed = [0] * seconds         # instances polling slower than poll_interval, at the end of each second
    slow = 0
    if episode:
        start, end, factor = episode
        bucket = Bucket(store.rate, store.window, lambda t: factor if start <= t < end else 1.0)
    else:
        bucket = Bucket(store.rate, store.window)
    limit = [store.rate * bucket.scale(float(s)) for s in range(seconds)]
    calls = store.calls(secrets)
    old = _Rendered({"S": "v1"}, {}, {"S": "restart"}, {"S": "${store:s}"})
    new = _Rendered({"S": "v2"}, {}, {"S": "restart"}, {"S": "${store:s}"})
    answer = Throttled(f"{store.name}: {store.probe} was throttled")
    error = ResolutionError([Problem(Kind.UNAVAILABLE, str(answer), provider=store.key)],
                            title="could not refresh secrets")
    if not baseline:
        error.throttled = (answer,)
    log = _Quiet()
    settings = _Settings(interval)
    rand = rng.random
    pollers: List[Poller] = []
    queue: List[Tuple[float, int]] = []
    for i in range(instances):
        poller = Poller(settings, old, log=log, clock=lambda: clock[0], wallclock=lambda: clock[0], rand=rand)
        # A fleet that has been running a while: next polls spread over one interval.
        poller.next_poll = rand() * interval
        pollers.append(poller)
        queue.append((poller.next_deadline(), i))
    heapq.heapify(queue)
    seen = [False] * instances     # this instance's snapshot has the new version
    while queue:
        t, i = heapq.heappop(queue)
        if t >= duration:
            break
        clock[0] = t
        second = int(t)
        poller = pollers[i]
        was_slow = poller.backoff.active
        poller.begin()
        polls[second] += 1
        changed = rotate_at is not None and t >= rotate_at
        # One probe request per batch, in order; the first throttled one
        # (after the SDK's own retry) ends this store's share of the refresh.
        wanted = calls + (1 if changed and not seen[i] else 0)   # + the fetch of the changed secret
        got = bucket.take(t, wanted)
        sent[second] += got
        ok = got == wanted
        if not ok:
            # The SDK's own retry comes at once here, so it is throttled too
            # (pessimistic: botocore waits up to a second first).
            refused = (wanted - got if baseline else 1) * store.sdk_attempts
            sent[second] += refused
            throttled[second] += refused
        if ok:
            if changed:
                seen[i] = True
            decision = poller.result(new if changed else old)
        else:
            decision = poller.result(error=error)
        slow += poller.backoff.active - was_slow
        slowed[second] = slow
        if decision is not None and decision.action == "restart":
            at = t + rand() * splay
            if at < duration:
                restarts[int(at)] += 1
            poller.committed(decision.rendered)
        heapq.heappush(queue, (poller.next_deadline(), i))
    for s_ in range(1, seconds):   # seconds without a poll keep the count before them
        if polls[s_] == 0:
            slowed[s_] = slowed[s_ - 1]
    return Run(seconds, sent, throttled, limit, restarts, polls, slowed, log.warnings)


# --- reading a run ----------------------------------------------------------------------------


def _window(values: List[float], start: int, end: int) -> float:
    end = max(end, start + 1)
    return sum(values[start:end]) / (end - start)


def steady(run: Run, start: int, end: int) -> Tuple[float, float, float]:
    """Mean requests/s sent, the limit's mean, and the throttled share in [start, end)."""
    rate = _window(run.sent, start, end)
    share = sum(run.throttled[start:end]) / max(1, sum(run.sent[start:end]))
    return rate, _window(run.limit, start, end), share


REFUSED = 0.10   # "settled": at most this share of a window's requests refused


def converged(run: Run, start: int, end: int, width: int) -> Optional[float]:
    """Seconds from ``start`` until every later window of ``width`` seconds
    (up to ``end``) has at most ``REFUSED`` of its requests throttled; None
    if never. (The requests sent never go far over the limit: a throttled
    refresh stops at its first refused request.)"""
    last_over = None
    for s in range(start, end - width + 1, max(1, width // 4)):
        if sum(run.throttled[s:s + width]) > REFUSED * max(1, sum(run.sent[s:s + width])):
            last_over = s + width
    if last_over is None:
        return 0.0
    return float(last_over - start) if last_over < end else None


def wave_index(run: Run, start: int, end: int, interval: float) -> float:
    """How bunched the polls are in [start, end): polls in the busiest
    1/20 of an interval over the mean of such slices. Near 1 when instances
    poll independently (more for small fleets: a slice then holds only a
    few polls); 20 when the whole fleet polls in the same slice, as a fleet
    retrying in lockstep does."""
    width = max(1, int(interval / 20))
    slices = [sum(run.polls[s:s + width]) for s in range(start, end - width + 1, width)]
    mean = sum(slices) / max(1, len(slices))
    return max(slices) / mean if mean else 0.0


class Report(NamedTuple):
    store: str
    instances: int
    secrets: int
    before_rate: float                # the default run, as before this back-off (``baseline``)
    before_throttled: float
    default_rate: float
    default_limit: float
    default_throttled: float
    default_converge: Optional[float]
    interval: float                   # the recommended interval
    episode_converge: Optional[float]
    episode_recover: Optional[float]  # seconds after the episode until ≥ 95% are at poll_interval
    episode_throttled: float          # share of requests throttled during the episode
    quiet_throttled: float            # ... and outside it, at the recommended interval
    quiet_rate: float
    wave: float
    peak_restarts: Tuple[float, float]  # restarts/s at splay 0 and splay = 4 intervals
    warnings: int
    seconds: float                    # wall time of the three runs


def measure(store: Store, instances: int, secrets: int, seed: int = 1) -> Report:
    started = time.perf_counter()
    # default: 30 s for 40 intervals (long enough for a 64× back-off to settle)
    duration = 40 * max(DEFAULT_INTERVAL, needed_interval(store, instances, secrets))
    run = simulate(store, instances, secrets, DEFAULT_INTERVAL, duration, seed)
    end = run.seconds - 1
    rate, lim, share = steady(run, end * 2 // 3, end)
    # judged over the interval the fleet settles at: shorter windows see its Poisson noise
    width = int(max(store.window, DEFAULT_INTERVAL, needed_interval(store, instances, secrets)))
    conv = converged(run, 0, end, width)
    warnings = run.warnings
    # Before: the outage backoff settles within minutes (it stops at 60 s).
    before = simulate(store, instances, secrets, DEFAULT_INTERVAL, min(duration, 40 * 60.0), seed, baseline=True)
    b_end = before.seconds - 1
    b_rate, _, b_share = steady(before, b_end * 2 // 3, b_end)

    interval = recommended_interval(store, instances, secrets)
    span = 33 * interval
    start, stop = 3 * interval, 13 * interval
    epi = simulate(store, instances, secrets, interval, span, seed + 1, episode=(start, stop, 0.25))
    width = int(max(store.window, interval / 2))
    e_conv = converged(epi, int(start), int(stop), width)
    e_share = sum(epi.throttled[int(start):int(stop)]) / max(1, sum(epi.sent[int(start):int(stop)]))
    q_rate, _, q_share = steady(epi, int(interval), int(start))
    # how long after the episode until 95% of the fleet polls at poll_interval again
    recover = next((float(s - int(stop)) for s in range(int(stop), epi.seconds)
                    if epi.slowed[s] <= 0.05 * instances), None)
    wave = wave_index(epi, int(start + 2 * interval), int(span), interval)
    peaks = []
    for splay in (0.0, 4 * interval):
        rot = simulate(store, instances, secrets, interval, 7 * interval, seed + 2, rotate_at=interval,
                       splay=splay)
        peaks.append(float(max(rot.restarts)))
    return Report(store.key, instances, secrets, b_rate, b_share, rate, lim, share, conv, interval, e_conv, recover, e_share,
                  q_share, q_rate, wave, (peaks[0], peaks[1]), warnings + epi.warnings,
                  time.perf_counter() - started)


# --- output -------------------------------------------------------------------------------------


def _dur(seconds: Optional[float]) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def table(reports: List[Report]) -> str:
    lines = ["| store | instances | at 30 s, before: sent / limit | refused | now: sent / limit | refused | "
             "settled after | "
             "recommended interval | sent / limit there | limit ÷4 for 10 intervals: refused | settled after | "
             "95% back at the interval after | wave index | peak restarts/s (splay 0 / 4 intervals) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in reports:
        store = STORES[r.store]
        lines.append(
            f"| {store.name} | {r.instances:,} | {r.before_rate:,.0f} / {r.default_limit:,.0f} "
            f"({r.before_rate / r.default_limit:.2f}×) | {100 * r.before_throttled:.1f}% "
            f"| {r.default_rate:,.0f} / {r.default_limit:,.0f} "
            f"({r.default_rate / r.default_limit:.2f}×) | {100 * r.default_throttled:.1f}% | "
            f"{_dur(r.default_converge)} | {_dur(r.interval)} | {r.quiet_rate:,.0f} / {store.rate:,.0f} "
            f"({r.quiet_rate / store.rate:.2f}×) | {100 * r.episode_throttled:.1f}% | {_dur(r.episode_converge)} | "
            f"{_dur(r.episode_recover)} | "
            f"{r.wave:.2f} | {r.peak_restarts[0]:,.0f} / {r.peak_restarts[1]:,.0f} |")
    return "\n".join(lines)


def arithmetic(instances: int, secrets: int) -> str:
    lines = [f"| store | request per poll of {secrets} secrets | documented limit | "
             f"{instances:,} instances at 30 s | interval needed (at the limit) | recommended (≤ half) |",
             "|---|---|---|---:|---:|---:|"]
    for store in STORES.values():
        calls = store.calls(secrets)
        rate = instances * calls / DEFAULT_INTERVAL
        lines.append(f"| {store.name} | {calls} × {store.probe} | {store.limit_text} | {rate:,.0f}/s "
                     f"({rate / store.rate:.2f}×) | {_dur(needed_interval(store, instances, secrets))} | "
                     f"{_dur(recommended_interval(store, instances, secrets))} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--secrets", type=int, default=20)
    parser.add_argument("--stores", default="all")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    keys = list(STORES) if args.stores == "all" else args.stores.split(",")
    print(arithmetic(max(sizes), args.secrets), end="\n\n", flush=True)
    reports = []
    started = time.perf_counter()
    for n in sizes:
        for key in keys:
            report = measure(STORES[key], n, args.secrets, args.seed)
            reports.append(report)
            print(f"# {key} × {n:,}: {report.seconds:.1f} s", file=sys.stderr, flush=True)
    print(table(reports))
    print(f"\n{len(reports)} fleets simulated in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
