"""The fetch engine with function-backed providers: dedupe, concurrency,
batching, retries. Providers here are fakes of the interface; every real
provider is tested against its real store in its own module."""

import threading
import time

import pytest

from secretrun.errors import Denied, NotFound, Unavailable
from secretrun.providers.base import Provider, ProviderContext, Secret, SecretId
from secretrun.resolver import fetch_all


class FakeProvider(Provider):
    type_name = "fake"

    def __init__(self, handler, name="fake", batch_size=1, max_concurrency=16, delay=0.0):
        super().__init__(ProviderContext(name, "fake"))
        self.handler = handler
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.delay = delay
        self.calls = []
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def _enter(self, what):
        with self.lock:
            self.calls.append(what)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.delay)

    def _leave(self):
        with self.lock:
            self.in_flight -= 1

    def fetch(self, sid):
        self._enter(sid)
        try:
            return self.handler(sid)
        finally:
            self._leave()

    def fetch_batch(self, sids):
        self._enter(sids)
        try:
            out = {}
            for sid in sids:
                try:
                    out[sid] = self.handler(sid)
                except Exception as exc:  # noqa: BLE001
                    out[sid] = exc
            return out
        finally:
            self._leave()


def ids(n, provider="fake"):
    return [SecretId(provider, f"s{i}") for i in range(n)]


def no_sleep(_):
    pass


def test_each_secret_is_fetched_once():
    p = FakeProvider(lambda sid: Secret(sid.path))
    sids = ids(3) * 4
    snap = fetch_all({"fake": p}, sids, sleep=no_sleep)
    assert sorted(c.path for c in p.calls) == ["s0", "s1", "s2"]
    assert snap[SecretId("fake", "s1")].value == "s1"


def test_fetches_run_concurrently_within_the_store_limit():
    p = FakeProvider(lambda sid: Secret("v"), delay=0.05, max_concurrency=5)
    start = time.monotonic()
    fetch_all({"fake": p}, ids(20), sleep=no_sleep)
    elapsed = time.monotonic() - start
    assert p.peak == 5
    assert elapsed < 20 * 0.05 / 2  # far from sequential


def test_batches_are_chunked_and_run_in_parallel():
    p = FakeProvider(lambda sid: Secret("v"), batch_size=20, delay=0.02)
    snap = fetch_all({"fake": p}, ids(45), sleep=no_sleep)
    assert sorted(len(c) for c in p.calls) == [5, 20, 20]   # chunks run in parallel, in any order
    assert len(snap) == 45


def test_ids_a_batch_leaves_unanswered_are_read_one_by_one_in_the_pool():
    """A store that refuses its batch verb (answers nothing): every id is
    read once on its own, several at a time but never more than
    ``max_concurrency``, for one chunk as for several."""
    class Refusing(FakeProvider):
        def fetch_batch(self, sids):
            self._enter(sids)
            self._leave()
            return {}

    for n in (20, 45):
        p = Refusing(lambda sid: Secret(sid.path), batch_size=20, max_concurrency=4, delay=0.02)
        snap = fetch_all({"fake": p}, ids(n), sleep=no_sleep)
        singles = [c for c in p.calls if isinstance(c, SecretId)]
        assert sorted(singles) == sorted(ids(n)) and list(snap) == ids(n)
        assert all(snap[sid].value == sid.path for sid in ids(n))
        assert 1 < p.peak <= 4


def test_transient_errors_are_retried_then_reported():
    attempts = {}

    def flaky(sid):
        attempts[sid] = attempts.get(sid, 0) + 1
        if sid.path == "down":
            raise Unavailable("store down")
        if attempts[sid] < 3:
            raise Unavailable("blip")
        return Secret("ok")

    p = FakeProvider(flaky)
    sleeps = []
    snap = fetch_all({"fake": p}, [SecretId("fake", "blip"), SecretId("fake", "down")], retries=3,
                     sleep=sleeps.append)
    assert snap[SecretId("fake", "blip")].value == "ok"
    assert isinstance(snap[SecretId("fake", "down")], Unavailable)
    assert attempts[SecretId("fake", "down")] == 4  # one try and three retries
    assert all(0 <= s <= 5 for s in sleeps)


def test_permanent_errors_are_not_retried():
    def handler(sid):
        raise {"missing": NotFound, "denied": Denied}[sid.path](sid.path)

    p = FakeProvider(handler)
    snap = fetch_all({"fake": p}, [SecretId("fake", "missing"), SecretId("fake", "denied")], sleep=no_sleep)
    assert len(p.calls) == 2
    assert isinstance(snap[SecretId("fake", "missing")], NotFound)
    assert isinstance(snap[SecretId("fake", "denied")], Denied)


def test_batch_retries_only_what_failed_transiently():
    seen = []

    def handler(sid):
        seen.append(sid.path)
        if sid.path == "s1" and seen.count("s1") == 1:
            raise Unavailable("throttled")
        return Secret(sid.path)

    p = FakeProvider(handler, batch_size=10)
    snap = fetch_all({"fake": p}, ids(3), sleep=no_sleep)
    assert [len(c) for c in p.calls] == [3, 1]
    assert snap[SecretId("fake", "s1")].value == "s1"


def test_a_provider_bug_becomes_an_error_without_its_message():
    def handler(sid):
        raise KeyError("the-secret-value")

    snap = fetch_all({"fake": FakeProvider(handler)}, ids(1), sleep=no_sleep)
    error = snap[SecretId("fake", "s0")]
    assert "failed unexpectedly" in str(error) and "the-secret-value" not in str(error)


def test_stores_are_fetched_in_parallel_with_each_other():
    a = FakeProvider(lambda sid: Secret("a"), name="a", delay=0.2)
    b = FakeProvider(lambda sid: Secret("b"), name="b", delay=0.2)
    start = time.monotonic()
    fetch_all({"a": a, "b": b}, ids(1, "a") + ids(1, "b"), sleep=no_sleep)
    assert time.monotonic() - start < 0.35


def test_retry_after_is_the_least_wait():
    calls = []

    def handler(sid):
        calls.append(sid)
        if len(calls) == 1:
            raise Unavailable("quota", retry_after=7.5)
        return Secret("ok")

    sleeps = []
    snap = fetch_all({"fake": FakeProvider(handler)}, ids(1), sleep=sleeps.append)
    assert snap[SecretId("fake", "s0")].value == "ok" and sleeps and sleeps[0] >= 7.5


def test_a_malformed_reference_fetches_nothing(manifest):
    from secretrun.errors import ProviderConfigError, ResolutionError
    from secretrun.manifest import load
    from secretrun.resolver import Session

    class Picky(FakeProvider):
        def check(self, sid):
            if "bad" in sid.path:
                raise ProviderConfigError(f"{sid.path!r} is not a name this store can hold")

    store = Picky(lambda sid: Secret("v"))
    path = manifest('version = 1\n[env]\nA = "${env:good}"\nB = "${env:bad name}"\n')
    loaded = load(str(path))
    session = Session(loaded, {"good": "1"})
    session.providers["env"] = store
    with pytest.raises(ResolutionError) as info:
        session.resolve()
    assert info.value.code == 78 and store.calls == []


def test_leases_are_renewed_then_refetched_before_they_end(manifest, monkeypatch):
    from secretrun import resolver
    from secretrun.manifest import load
    from secretrun.providers.base import Lease
    from secretrun.resolver import Session

    now = [1000.0]
    monkeypatch.setattr(resolver.time, "time", lambda: now[0])
    issued = []

    class Leasing(FakeProvider):
        renewals = []

        def renew(self, lease):
            self.renewals.append(lease.id)
            # renewed once for the full 100 s, then capped at 30 s by its max TTL
            return Lease(lease.id, 100.0 if len(self.renewals) == 1 else 30.0, True)

    def handler(sid):
        issued.append(sid)
        return Secret(f"cred-{len(issued)}", version=f"lease-{len(issued)}",
                      lease=Lease(f"id-{len(issued)}", 100.0, True))

    store = Leasing(handler)
    path = manifest('version = 1\n[settings]\npoll_interval = "10s"\n[env]\nCRED = "${env:db}"\n')
    loaded = load(str(path))
    session = Session(loaded, {})
    session.providers["env"] = store
    assert session.resolve().env["CRED"] == "cred-1"
    session.keepalive()
    assert store.renewals == []                      # not yet half way
    now[0] += 60
    session.keepalive()
    assert store.renewals == ["id-1"] and session.next_expiry() is None
    now[0] += 60
    session.keepalive()                               # capped: an end for good
    assert session.next_expiry() == now[0] + 30
    assert session.refresh().env["CRED"] == "cred-2"  # refetched before it ends
    assert session.next_expiry() is None


def test_a_throttled_refresh_stops_asking_that_store_and_keeps_last_good_values(manifest):
    """Polling: once a store throttles, the rest of its secrets wait for the
    next poll; nothing throttled is retried within the refresh; the error
    carries the throttling answers for the poller."""
    from secretrun.errors import ResolutionError, Throttled
    from secretrun.manifest import load
    from secretrun.resolver import Session

    limit = {"left": 100}

    class Limited(FakeProvider):
        def probe(self, sid):
            self._enter(("probe", sid.path))
            self._leave()
            if limit["left"] <= 0:
                raise Throttled("fake store: rate limit exceeded (HTTP 429)", retry_after=3.0)
            limit["left"] -= 1
            return "v1"

    store = Limited(lambda sid: Secret(f"value-{sid.path}", version="v1"))
    env = "\n".join(f'S{i} = "${{env:s{i}}}"' for i in range(20))
    loaded = load(str(manifest(f'version = 1\n[settings]\nretries = 3\n[env]\n{env}\n')))
    session = Session(loaded, {})
    session.providers["env"] = store
    first = session.resolve()
    limit["left"] = 5
    store.calls.clear()
    with pytest.raises(ResolutionError) as info:
        session.refresh()
    # 5 answered, the 6th throttled, the other 14 not asked; no retry.
    assert len(store.calls) == 6 and all(c[0] == "probe" for c in store.calls)
    assert len(info.value.throttled) == 1 and info.value.throttled[0].retry_after == 3.0
    assert len(info.value.problems) == 1 and info.value.code == 69
    limit["left"] = 100
    assert session.refresh().env == first.env          # the last good values were kept


def test_a_throttled_fetch_is_not_retried_within_a_refresh_but_is_at_start():
    from secretrun.errors import Throttled

    def throttled(sid):
        raise Throttled("429", retry_after=None)

    store = FakeProvider(throttled)
    got = fetch_all({"fake": store}, [SecretId("fake", "a")], retries=3, sleep=lambda s: None,
                    retry_throttled=False)
    assert isinstance(got[SecretId("fake", "a")], Throttled) and len(store.calls) == 1
    fetch_all({"fake": store}, [SecretId("fake", "b")], retries=3, sleep=lambda s: None)
    assert len(store.calls) == 1 + 4
