"""The change-source capability, with a store that pushes by hand: the
session stops polling what a stream follows, takes what it delivers, polls
again when it is lost; the poller refreshes at once when woken, keeping the
debounce and the outage backoff."""

import threading

from secretrun.errors import NotFound, ResolutionError
from secretrun.manifest import load
from secretrun.providers.base import Provider, ProviderContext, Secret
from secretrun.resolver import Session
from secretrun.watch import Poller
from tests.conftest import CANARY, assert_no_canary
from tests.watch_fixtures import FakeClock, FakeLog, rendered, settings

NEW = "pushed-value-2"


class Pushing(Provider):
    """Answers fetches from ``values``; ``changes`` hands the test the sink."""

    type_name = "pushing"

    def __init__(self, values):
        super().__init__(ProviderContext("p", "pushing"))
        self.values = values
        self.fetches = []
        self.sink = self.sids = None
        self.closed = threading.Event()

    def fetch(self, sid):
        self.fetches.append(sid.path)
        if sid.path not in self.values:
            raise NotFound(f"{sid.path} does not exist")
        return Secret(self.values[sid.path], "1")

    def probe(self, sid):
        return self.fetch(sid)

    def changes(self, sids, sink):
        self.sink, self.sids = sink, sids
        return self   # closable

    def close(self):
        self.closed.set()


def session(manifest, provider):
    path = manifest('version = 1\n[providers.p]\ntype = "env"\n[env]\nA = "${p:a}"\nB = "${p:b}"\n')
    loaded = load(str(path))
    s = Session(loaded, {}, watch=True)
    s.providers["p"] = provider
    return s


def test_a_followed_secret_is_not_polled_and_takes_what_was_pushed(manifest, capfd):
    store = Pushing({"a": CANARY, "b": "bee"})
    s = session(manifest, store)
    assert s.resolve().env["A"] == CANARY
    woken = []
    assert s.watch_changes(lambda: woken.append(1)) == 2
    store.fetches.clear()
    assert s.refresh().env["A"] == CANARY and store.fetches == []          # followed: nobody asked
    (a,) = [sid for sid in store.sids if sid.path == "a"]
    store.sink.changed({a: Secret(NEW, "2")})
    assert woken == [1]
    assert s.refresh().env["A"] == NEW and store.fetches == []             # delivered, not fetched
    store.sink.lost(store.sids, "the stream broke")
    assert woken == [1, 1]
    store.values["a"] = "polled"
    assert s.refresh().env["A"] == "polled" and sorted(store.fetches) == ["a", "b"]   # polled again
    store.sink.restored(store.sids)
    store.fetches.clear()
    s.refresh()
    assert store.fetches == []
    store.sink.changed({a: NotFound("a was deleted")})
    try:
        s.refresh()
        raise AssertionError("a deleted secret must fail the refresh")
    except ResolutionError as exc:
        assert "a was deleted" in str(exc)
    assert len(woken) == 3
    s.close()
    assert store.closed.is_set()
    store.sink.changed({a: Secret("after close", "3")})                     # ignored, no wake
    assert len(woken) == 3
    out, err = capfd.readouterr()
    assert "the stream broke" in err
    assert_no_canary(out, err)


def test_a_store_that_cannot_push_is_polled_as_before(manifest):
    class Polled(Pushing):
        def changes(self, sids, sink):
            return None

    store = Polled({"a": "x", "b": "y"})
    s = session(manifest, store)
    s.resolve()
    assert s.watch_changes(lambda: None) == 0
    store.fetches.clear()
    s.refresh()
    assert sorted(store.fetches) == ["a", "b"]


def test_wake_refreshes_now_but_keeps_debounce_and_backoff():
    clock, wall = FakeClock(), FakeClock(5_000_000.0)
    first = rendered({"A": CANARY})
    poller = Poller(settings(poll_interval=60.0, debounce=0.5), first, log=FakeLog(), clock=clock,
                    wallclock=wall, rand=lambda: 0.5)
    assert not poller.poll_due(clock.now)
    poller.wake()
    assert poller.poll_due(clock.now) and poller.next_deadline() == clock.now
    poller.begin()
    assert poller.result(rendered({"A": NEW})) is None                     # seen: now settle
    poller.wake()                                                           # a second push meanwhile
    assert not poller.poll_due(clock.now)                                   # ... keeps the debounce
    clock.advance(0.5)
    poller.begin()
    decision = poller.result(rendered({"A": NEW}))
    assert decision.action == "restart" and decision.changed == ("A",)
    poller.committed(decision.rendered)
    poller.begin()
    poller.result(error=RuntimeError("down"))                               # an outage ...
    poller.wake()
    assert not poller.poll_due(clock.now)                                   # ... keeps its backoff
