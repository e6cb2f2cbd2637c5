"""Fetching: each secret once, concurrently, with retries (no session state).

``fetch_all`` answers a ``Snapshot`` (``SecretId -> Secret | ProviderError``:
errors are returned, not raised); ``probe_all`` asks a store's cheap
``probe`` for a refresh. Every store call runs under the store's overall
deadline (``deadline.bounded``).

``fetch_all``:
- one request per ``SecretId`` however many variables use it (``#url`` and
  ``#password`` of one secret are one fetch);
- local stores (env, dotenv, file) inline; network stores in a thread pool
  sized to the work, at most ``max_concurrency`` in flight per store, in
  chunks of ``batch_size`` where the store has a batch verb; ids a batch
  leaves unanswered (a store that refused the batch verb, a pinned version
  the batch call cannot read) go back into the same pool, one read each;
- errors whose ``retryable`` is true (``Unavailable``, unless it says
  otherwise, as a TLS refusal does) retried ``settings.retries`` times with
  exponential backoff and full jitter; nothing else is retried. A watch
  refresh does not retry ``Throttled`` answers: the poller slows down instead
  (``secretrun.backoff``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from .deadline import bounded
from .errors import ProviderError, Throttled, provider_bug
from .providers.base import Provider, Secret, SecretId

Outcome = Union[Secret, ProviderError]
Snapshot = Dict[SecretId, Outcome]

BACKOFF_BASE = 0.2
BACKOFF_CAP = 5.0


def _backoff(attempt: int) -> float:
    import random  # only once a store has failed: not on every start

    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** attempt)))


def _pause(attempt: int, error: object) -> float:
    return max(_backoff(attempt), getattr(error, "retry_after", None) or 0.0)


def _again(outcome: object, throttled: bool) -> bool:
    """Whether a failed answer is worth asking again: the error says so, and a
    throttled one only where throttling is retried (not in a watch refresh)."""
    return isinstance(outcome, ProviderError) and outcome.retryable and (throttled or not isinstance(outcome, Throttled))


def _with_retries(call: Callable[[], Any], retries: int, sleep: Callable[[float], None],
                  throttled: bool = True) -> Any:
    attempt = 0
    while True:
        try:
            return call()
        except ProviderError as exc:   # the error says whether asking again can help
            if attempt >= retries or not _again(exc, throttled):
                raise
            sleep(_pause(attempt, exc))
            attempt += 1


def fetch_all(providers: Mapping[str, Provider], sids: Iterable[SecretId], retries: int = 3,
              sleep: Callable[[float], None] = time.sleep,
              observe: Optional[Callable[[SecretId, Outcome, float], None]] = None,
              retry_throttled: bool = True) -> Snapshot:
    """Fetch every id once; errors are returned, not raised. ``observe`` is
    told each outcome and how long its request took (a batch's time for each
    of its ids), from whichever thread fetched it. ``retry_throttled=False``
    returns a ``Throttled`` answer at once (a watch refresh)."""
    fetch_one, run_task = _fetch_one, _run_task
    if not retry_throttled:
        import functools

        fetch_one = functools.partial(_fetch_one, throttled=False)
        run_task = functools.partial(_run_task, throttled=False)
    if observe is not None:
        inner_fetch, inner_task = fetch_one, run_task

        def timed_one(provider, sid, retries, sleep):
            start = time.monotonic()
            out = inner_fetch(provider, sid, retries, sleep)
            observe(sid, out, time.monotonic() - start)
            return out

        def timed_task(provider, chunk, retries, sleep):
            start = time.monotonic()
            got, gaps = inner_task(provider, chunk, retries, sleep)
            for sid, out in got.items():
                observe(sid, out, time.monotonic() - start)
            return got, gaps

        return _fetch_all(providers, sids, retries, sleep, timed_one, timed_task)
    return _fetch_all(providers, sids, retries, sleep, fetch_one, run_task)


Task = Tuple[Provider, Tuple[SecretId, ...]]


def _fetch_all(providers, sids, retries, sleep, fetch_one, run_task) -> Snapshot:
    by_provider: Dict[str, List[SecretId]] = {}
    for sid in dict.fromkeys(sids):
        by_provider.setdefault(sid.provider, []).append(sid)
    out: Snapshot = {}
    tasks: List[Task] = []
    for name, ids in by_provider.items():
        provider = providers[name]
        if provider.local:
            for sid in ids:
                out[sid] = fetch_one(provider, sid, retries, sleep)
            continue
        size = max(1, provider.batch_size)
        for i in range(0, len(ids), size):
            tasks.append((provider, tuple(ids[i:i + size])))
    if len(tasks) == 1:
        got, gaps = run_task(*tasks[0], retries, sleep)
        out.update(got)
        tasks = [(tasks[0][0], (sid,)) for sid in gaps]
        if len(tasks) == 1:   # one gap: read inline, as one secret is
            out.update(run_task(*tasks[0], retries, sleep)[0])
            return out
    if tasks:
        pooled = _pooled(tasks, retries, sleep, run_task)
        # In the order asked, whichever request answered first.
        out.update((sid, pooled[sid]) for _, chunk in tasks for sid in chunk)
    return out


def _pooled(tasks: List[Task], retries: int, sleep, run_task) -> Snapshot:
    """Run ``tasks`` in one thread pool, at most ``max_concurrency`` in flight
    per store. Ids a batch leaves unanswered are submitted to the same pool
    as single reads by this (the coordinating) thread, never from inside a
    worker: a worker waiting on the pool it runs in could deadlock it."""
    import threading
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    stores = {id(p): p for p, _ in tasks}
    limits = {key: threading.BoundedSemaphore(max(1, p.max_concurrency)) for key, p in stores.items()}

    def run(task: Task) -> Tuple[Task, Dict[SecretId, Outcome], Tuple[SecretId, ...]]:
        provider, chunk = task
        with limits[id(provider)]:
            got, gaps = run_task(provider, chunk, retries, sleep)
        return task, got, gaps

    # Threads start as tasks are submitted, so the cap is only a cap: gaps may
    # add up to ``batch_size`` single reads per batch after the first round.
    workers = min(64, sum(max(1, p.max_concurrency) for p in stores.values()))
    out: Snapshot = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="secretrun-fetch") as pool:
        pending = {pool.submit(run, task) for task in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                (provider, _), got, gaps = future.result()
                out.update(got)
                pending.update(pool.submit(run, (provider, (sid,))) for sid in gaps)
    return out


def _fetch_one(provider: Provider, sid: SecretId, retries: int, sleep, throttled: bool = True) -> Outcome:
    try:
        return _with_retries(lambda: bounded(provider, lambda: provider.fetch(sid)), retries, sleep, throttled)
    except ProviderError as exc:
        return exc
    except Exception as exc:  # a provider bug must not become a traceback with values in it
        return provider_bug(provider.name, exc)


def _run_task(provider: Provider, chunk: Tuple[SecretId, ...], retries: int, sleep,
              throttled: bool = True) -> Tuple[Dict[SecretId, Outcome], Tuple[SecretId, ...]]:
    """One chunk's answers, and the ids its batch left unanswered (for the
    caller to read one by one, in its pool)."""
    if len(chunk) == 1 or provider.batch_size <= 1:
        return {sid: _fetch_one(provider, sid, retries, sleep, throttled) for sid in chunk}, ()
    pending = chunk
    result: Dict[SecretId, Outcome] = {}
    gaps: List[SecretId] = []
    attempt = 0
    while True:
        try:
            got = dict(bounded(provider, lambda: provider.fetch_batch(pending)))
        except ProviderError as exc:
            got = {sid: exc for sid in pending}
        except Exception as exc:
            err = provider_bug(provider.name, exc)
            got = {sid: err for sid in pending}
        # Ids a batch left unanswered (a store that refused the batch verb,
        # say) are read one by one, with their own retries, by the caller.
        gaps += [sid for sid in pending if sid not in got]
        got = {sid: got[sid] for sid in pending if sid in got}
        result.update(got)
        pending = tuple(s for s in got if _again(got[s], throttled))
        if not pending or attempt >= retries:
            return result, tuple(gaps)
        sleep(_pause(attempt, max((got[s] for s in pending), key=lambda e: getattr(e, "retry_after", 0) or 0)))
        attempt += 1


def probe_all(provider: Provider, sids: List[SecretId]) -> Dict[SecretId, Union[str, Secret, None, ProviderError]]:
    """Each id's probe answer (or error), in chunks of ``batch_size`` through
    ``probe_batch``. Once the store throttles, the rest is not asked: those
    ids are left out of the answer."""
    out: Dict[SecretId, Union[str, Secret, None, ProviderError]] = {}
    size = max(1, provider.batch_size)
    for i in range(0, len(sids), size):
        chunk = tuple(sids[i:i + size])
        try:
            if len(chunk) > 1:
                got = dict(bounded(provider, lambda: provider.probe_batch(chunk)))
            else:
                got = {chunk[0]: bounded(provider, lambda: provider.probe(chunk[0]))}
        except ProviderError as exc:
            got = {sid: exc for sid in chunk}
        except Exception as exc:  # a provider bug must not become a traceback with values in it
            err = provider_bug(provider.name, exc)
            got = {sid: err for sid in chunk}
        out.update(got)
        if any(isinstance(v, Throttled) for v in got.values()):
            break
    return out
