"""The poller's policy replayed on a fake clock (no sleeps): settling,
policies, outages, max_stale, leases and throttling (rotation end to end,
with real files and a real child, is tests/process/test_watch.py)."""

from __future__ import annotations

import pytest

from secretrun.watch import Poller, changed_variables
from tests.conftest import CANARY, assert_no_canary
from tests.watch_fixtures import FakeClock, FakeLog, outage, rendered, settings

NEW = CANARY + "-rotated"


def make(script_settings=None, first=None, rand=0.5):
    clock, wall, log = FakeClock(), FakeClock(5_000_000.0), FakeLog()
    cfg = settings(**(script_settings or {}))
    first = first or rendered({"DB": CANARY, "API": "api-value-1"})
    poller = Poller(cfg, first, log=log, clock=clock, wallclock=wall, rand=lambda: rand)
    return poller, clock, wall, log


def poll(poller, clock, wall, outcome):
    """Advance to the next deadline and feed one refresh outcome (or return
    the stale decision, when that deadline comes first)."""
    step = max(0.0, poller.next_deadline() - clock.now)
    clock.advance(step)
    wall.advance(step)
    if not poller.poll_due(clock.now):
        return poller.check_stale(clock.now)
    poller.begin()
    if isinstance(outcome, BaseException):
        return poller.result(error=outcome)
    return poller.result(outcome)


# --- the poller, on a fake clock -----------------------------------------------


def test_unchanged_values_never_decide_anything_over_many_polls():
    poller, clock, wall, log = make()
    same = rendered({"DB": CANARY, "API": "api-value-1"})
    start = clock.now
    for _ in range(1000):
        assert poll(poller, clock, wall, same) is None
    # 1000 polls at 1 s ±10%: the mean interval is the setting.
    assert 990 < clock.now - start < 1010
    assert poller.stats["polls"] == 1000 and not log.at("warning")


def test_jitter_stays_within_ten_percent():
    for r in (0.0, 1.0):
        poller, clock, *_ = make(rand=r)
        assert poller.next_deadline() - clock.now == pytest.approx(0.9 if r == 0 else 1.1)


def test_a_change_is_acted_on_once_it_settles():
    poller, clock, wall, log = make()
    new = rendered({"DB": NEW, "API": "api-value-1"})
    assert poll(poller, clock, wall, new) is None          # seen: wait for it to settle
    assert poller.next_deadline() - clock.now == pytest.approx(0.1)   # debounce, not a full interval
    decision = poll(poller, clock, wall, new)
    assert decision.action == "restart" and decision.changed == ("DB",)
    assert "DB (${test:db}) changed" == decision.reason
    assert_no_canary(decision.reason, log.text)
    assert_no_canary(decision.reason, log.text, canary=NEW)


def test_a_burst_of_rotations_gives_one_decision_with_every_name():
    poller, clock, wall, _ = make()
    half = rendered({"DB": NEW, "API": "api-value-1"})
    full = rendered({"DB": NEW, "API": "api-value-2"})
    assert poll(poller, clock, wall, half) is None
    assert poll(poller, clock, wall, full) is None     # still moving: wait again
    decision = poll(poller, clock, wall, full)
    assert decision.changed == ("API", "DB")
    assert poll(poller, clock, wall, full) is None     # nothing more after that
    poller.committed(full)
    for _ in range(5):
        assert poll(poller, clock, wall, full) is None


def test_a_store_that_keeps_changing_is_acted_on_within_one_interval():
    poller, clock, wall, _ = make()
    first_seen = None
    for i in range(100):
        decision = poll(poller, clock, wall, rendered({"DB": f"value-{i:04d}", "API": "api-value-1"}))
        if first_seen is None:
            first_seen = clock.now
        if decision is not None:
            break
    assert decision is not None and clock.now - first_seen <= 1.0 + 0.11


def test_a_change_that_flips_back_before_settling_does_nothing():
    poller, clock, wall, _ = make()
    assert poll(poller, clock, wall, rendered({"DB": NEW, "API": "api-value-1"})) is None
    assert poll(poller, clock, wall, rendered({"DB": CANARY, "API": "api-value-1"})) is None
    assert poll(poller, clock, wall, rendered({"DB": CANARY, "API": "api-value-1"})) is None


def settle(poller, clock, wall, new):
    assert poll(poller, clock, wall, new) is None
    return poll(poller, clock, wall, new)


def test_per_variable_policies_the_strongest_wins():
    first = rendered({"DB": CANARY, "API": "a1", "TLS": "/run/x/TLS"}, files={"TLS": b"k1"},
                     on_change={"API": "ignore", "TLS": "signal"})
    poller, clock, wall, log = make(first=first)
    only_api = first._replace(env={**first.env, "API": "a2"})
    decision = settle(poller, clock, wall, only_api)
    assert decision.action == "ignore" and decision.changed == ("API",)
    # ignored: no decision again for the same values
    assert poll(poller, clock, wall, only_api) is None
    tls = only_api._replace(files={"TLS": b"k2"})
    decision = settle(poller, clock, wall, tls)
    assert decision.action == "signal" and decision.changed == ("TLS",) and decision.files_changed
    poller.committed(tls)
    both = tls._replace(env={**tls.env, "DB": NEW}, files={"TLS": b"k3"})
    decision = settle(poller, clock, wall, both)
    assert decision.action == "restart" and decision.changed == ("DB", "TLS")


def test_signal_cannot_deliver_an_environment_variable_so_it_restarts():
    first = rendered({"DB": CANARY}, on_change={"DB": "signal"})
    poller, clock, wall, log = make(first=first)
    decision = settle(poller, clock, wall, rendered({"DB": NEW}, on_change={"DB": "signal"}))
    assert decision.action == "restart"
    assert any("not a file" in m for m in log.at("info"))


def test_on_change_exit_turns_restarts_into_exits():
    first = rendered({"DB": CANARY, "API": "a1"}, on_change={"API": "ignore"}, default="exit")
    poller, clock, wall, _ = make({"on_change": "exit"}, first=first)
    decision = settle(poller, clock, wall, first._replace(env={"DB": NEW, "API": "a1"}))
    assert decision.action == "exit"


def test_an_outage_keeps_the_values_warns_once_and_backs_off():
    poller, clock, wall, log = make(rand=1.0)
    delays = []
    for _ in range(10):
        before = clock.now
        assert poll(poller, clock, wall, outage()) is None
        delays.append(poller.next_deadline() - clock.now)
        assert before <= clock.now
    assert len(log.at("warning")) == 1
    assert "keeps running on its last good values" in log.at("warning")[0]
    # 1 s × 2ⁿ, capped at 60 s (rand=1.0: the top of the jitter range)
    assert [round(d, 6) for d in delays] == [2.0, 4.0, 8.0, 16.0, 32.0] + [60.0] * 5
    assert poller.stats["store_healthy"] is False
    # recovery with the same values: one info line, nothing to do
    assert poll(poller, clock, wall, rendered({"DB": CANARY, "API": "api-value-1"})) is None
    assert any("answer again" in m for m in log.at("info"))
    assert poller.stats["store_healthy"] is True and poller.next_deadline() - clock.now == pytest.approx(1.1)
    # the next outage warns again, once
    poll(poller, clock, wall, outage())
    poll(poller, clock, wall, outage("DENIED"))
    assert len(log.at("warning")) == 2
    assert_no_canary(log.text)


def test_backoff_jitter_spreads_between_half_and_full():
    for r, expected in ((0.0, 1.0), (1.0, 2.0)):
        poller, clock, wall, _ = make(rand=r)
        poll(poller, clock, wall, outage())
        assert poller.next_deadline() - clock.now == pytest.approx(expected)


def test_max_stale_is_off_by_default():
    poller, clock, wall, _ = make()
    for _ in range(200):
        assert poll(poller, clock, wall, outage()) is None
    assert clock.now - 1000 > 3600


def test_max_stale_stops_after_the_bound():
    poller, clock, wall, _ = make({"max_stale": 10.0}, rand=0.0)
    decisions = []
    for _ in range(10):
        decisions.append(poll(poller, clock, wall, outage()))
        if decisions[-1] is not None:
            break
    assert decisions[-1].action == "stale"
    assert clock.now - 1000 == pytest.approx(10.0)
    # the deadline itself wakes the supervisor, not only the next poll
    poller2, clock2, wall2, _ = make({"max_stale": 3.0}, rand=1.0)
    poll(poller2, clock2, wall2, outage())       # at 1.1 s, next poll at +2 s... capped by stale
    assert poller2.next_deadline() == pytest.approx(1000 + 3.0)
    clock2.now = poller2.next_deadline()
    assert poller2.check_stale(clock2.now).action == "stale"


def test_an_expiring_lease_forces_a_refresh_and_a_restart_even_for_ignore():
    first = rendered({"DB": CANARY}, on_change={"DB": "ignore"})
    poller, clock, wall, log = make({"poll_interval": 30.0}, first=first)
    poller.set_expiry(wall.now + 600)        # 10 min left: act 90 s before (60 s + one interval)
    assert poller.lease_deadline == pytest.approx(clock.now + 510)
    # ordinary polls until then see the same values
    while clock.now + 30 * 1.1 < 1000 + 510:
        assert poll(poller, clock, wall, first) is None
    decision = poll(poller, clock, wall, rendered({"DB": NEW}, on_change={"DB": "ignore"}))
    assert clock.now == pytest.approx(1000 + 510)
    assert decision.action == "restart" and "could not be renewed" in decision.reason


def test_an_expiring_lease_refresh_that_fails_is_retried_with_backoff():
    first = rendered({"DB": CANARY})
    poller, clock, wall, _ = make(first=first, rand=1.0)
    poller.set_expiry(wall.now + 2.0)        # short: act at half the time left
    assert poller.next_deadline() == pytest.approx(clock.now + 1.0)
    assert poll(poller, clock, wall, outage()) is None
    assert poller.forced is False and poller.lease_deadline == pytest.approx(clock.now + 2.0)
    decision = poll(poller, clock, wall, rendered({"DB": NEW}))
    assert decision.action == "restart"


def test_changed_variables_names_files_by_their_variable():
    a = rendered({"K": "/d/K", "X": "1111"}, files={"K": b"a"})
    b = rendered({"K": "/d/K", "X": "1111"}, files={"K": b"b"})
    assert changed_variables(a, b) == (("K",), True)
    assert changed_variables(a, a) == ((), False)


# --- throttling: slower polls, not an outage -------------------------------------------------


def throttled_error(retry_after=None, also_down=False):
    from secretrun.errors import Kind, Problem, ResolutionError, Throttled

    answer = Throttled("vault: rate limit exceeded (HTTP 429) (http://127.0.0.1:1)", retry_after=retry_after)
    problems = [Problem(Kind.UNAVAILABLE, str(answer), provider="vault", reference="${vault:secret/db}")]
    if also_down:
        problems.append(Problem(Kind.UNAVAILABLE, "store at http://127.0.0.1:2 did not answer", provider="aws"))
    error = ResolutionError(problems, title="could not refresh secrets")
    error.throttled = (answer,)
    return error


def test_throttling_doubles_the_interval_then_steps_back_one_interval_at_a_time():
    poller, clock, wall, log = make(rand=0.0)
    same = rendered({"DB": CANARY, "API": "api-value-1"})
    waits = []
    for _ in range(4):
        assert poll(poller, clock, wall, throttled_error()) is None
        waits.append(poller.next_deadline() - clock.now)
    assert [round(w, 6) for w in waits] == [2.0, 4.0, 8.0, 16.0]    # ×2, rand=0: the bottom of [1, 1.5)
    assert poller.stats["throttled"] and poller.stats["poll_interval_now"] == 16.0
    assert poller.stats["store_healthy"] and poller.stats["failed_polls"] == 0   # not an outage
    warnings = log.at("warning")
    assert len(warnings) == 1 and "throttling" in warnings[0]                   # once per episode
    intervals = []
    for _ in range(23):
        assert poll(poller, clock, wall, same) is None
        intervals.append(poller.stats["poll_interval_now"])
    # each answered poll takes a poll_interval off, or an eighth when that is more
    expected, interval = [], 16.0
    while interval > 1.0:
        interval = max(1.0, interval - max(1.0, interval / 8))
        expected.append(interval)
    assert expected[:3] == [14.0, 12.25, 12.25 - 12.25 / 8] and len(expected) == 13
    assert intervals == expected + [1.0] * 10
    assert not poller.stats["throttled"] and any("polling every poll_interval again" in m for m in log.at("info"))
    # never faster than configured: rand=0 is the bottom of the ±10% jitter
    assert poller.next_deadline() - clock.now == pytest.approx(0.9)
    assert_no_canary(log.text)


def test_retry_after_is_honoured_and_throttled_waits_spread_over_half_an_interval():
    poller, clock, wall, _ = make(rand=1.0)
    poll(poller, clock, wall, throttled_error(retry_after=30.0))
    assert poller.next_deadline() - clock.now == pytest.approx(45.0)   # interval 30 × (1 + 0.5)
    poller, clock, wall, _ = make(rand=0.0)
    poll(poller, clock, wall, throttled_error(retry_after=30.0))
    assert poller.next_deadline() - clock.now == pytest.approx(30.0)


def test_throttling_never_trips_max_stale_but_an_outage_with_it_does():
    poller, clock, wall, _ = make({"max_stale": 10.0}, rand=0.0)
    for _ in range(12):
        assert poll(poller, clock, wall, throttled_error()) is None
    assert clock.now - 1000 > 200 and poller.stats["throttled_polls"] == 12   # far beyond max_stale
    # throttled and another store down: an outage, at no faster pace than the throttling allows
    poller, clock, wall, _ = make({"max_stale": 100.0}, rand=0.0)
    poll(poller, clock, wall, throttled_error(also_down=True))
    assert poller.backoff.interval == 2.0 and poller.next_deadline() - clock.now == pytest.approx(2.0)
    assert poller.stats["store_healthy"] is False


def test_the_interval_is_capped_and_a_backed_off_fleet_is_spread():
    from secretrun.backoff import Backoff

    for base, cap in ((30.0, 30.0 * 32), (120.0, 3600.0), (1800.0, 7200.0)):
        b = Backoff(base, rand=lambda: 0.5)
        for _ in range(20):
            b.throttled()
        assert b.interval == cap
    import random

    rng = random.Random(7)
    waits = sorted(Backoff(30.0, rng.random).throttled() for _ in range(1000))
    assert 60.0 <= waits[0] and waits[-1] < 90.0 and waits[500] == pytest.approx(75.0, abs=3)
