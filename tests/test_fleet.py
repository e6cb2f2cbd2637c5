"""A fleet of watching instances against a store's rate limit, small enough
for CI: the real poller and back-off (``bench.fleet`` at 10,000 instances
has the figures in the README), on a virtual clock, against a token bucket.
Deterministic: every run is seeded."""

from __future__ import annotations

import pytest

from bench.fleet import STORES, Store, converged, recommended_interval, simulate, steady, wave_index

# A Vault rate-limit quota sized so that 400 instances x 20 secrets at 30 s
# (267 requests/s) are 2.7x over it.
QUOTA = Store("quota", "OpenBao quota", "KV v2 metadata GET", 1, 100.0, 1.0, "100/s")


def test_a_fleet_over_the_limit_backs_off_to_it_and_stays_there():
    run = simulate(QUOTA, 400, 20, 30.0, 3000.0, seed=3)
    end = run.seconds - 1
    rate, limit, share = steady(run, end * 2 // 3, end)
    assert rate <= 1.05 * limit and share < 0.05
    # it got there within a few minutes
    assert converged(run, 0, end, 60) <= 600
    # and the instances never polled in lockstep after the first throttling
    assert wave_index(run, 600, end, 30.0) < 3.0
    assert run.warnings < 2 * 400         # one warning per instance and episode, not per poll


def test_at_the_recommended_interval_nothing_is_throttled_and_an_episode_is_absorbed():
    interval = recommended_interval(QUOTA, 400, 20)
    assert interval == 300.0                # 400 x 20 / 300 s = 27/s: at most half of 100/s
    start, stop = 3 * interval, 13 * interval
    run = simulate(QUOTA, 400, 20, interval, 23 * interval, seed=4, episode=(start, stop, 0.25))
    rate, limit, share = steady(run, int(interval), int(start))
    assert rate < 0.5 * limit and share == 0.0
    # the limit drops to a quarter: under it again within three intervals...
    assert converged(run, int(start), int(stop), int(interval / 2)) <= 3 * interval
    # ...and once it is back, most of the fleet returns to its interval within 10
    assert run.slowed[int(stop + 10 * interval)] <= 0.2 * 400
    assert wave_index(run, int(start), run.seconds - 1, interval) < 3.0


@pytest.mark.parametrize("key", sorted(STORES))
def test_every_store_model_at_its_recommended_interval_stays_under_its_limit(key):
    store = STORES[key]
    interval = recommended_interval(store, 300, 20)
    run = simulate(store, 300, 20, interval, 10 * interval, seed=5)
    rate, limit, share = steady(run, int(interval), run.seconds - 1)
    assert rate <= 0.55 * limit and share == 0.0


def test_a_rotation_restarts_every_instance_once_spread_over_splay():
    restarts = {}
    for splay in (0.0, 300.0):
        run = simulate(QUOTA, 200, 1, 60.0, 600.0, seed=6, rotate_at=60.0, splay=splay)
        assert sum(run.restarts) == 200
        restarts[splay] = max(run.restarts)
    # seen at each instance's next poll: already spread over one interval;
    # splay spreads them further
    assert restarts[0.0] <= 15 and restarts[300.0] <= restarts[0.0]
