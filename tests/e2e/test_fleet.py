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
    # The same fleet as before throttling had its own error: an outage's backoff
    # (at most 60 s, 2x the interval) and every secret asked at each poll.
    before = simulate(QUOTA, 400, 20, 30.0, 3000.0, seed=3, baseline=True)
    before_rate, _, before_share = steady(before, end * 2 // 3, end)
    assert before_rate > 1.5 * limit and before_share > 0.4 and before_share > 20 * share


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


# --- live: real supervisors against a real OpenBao rate-limit quota -------------------------------


def test_supervisors_polling_faster_than_an_openbao_quota_back_off_and_a_rotation_still_reaches_them(
        bao, tmp_path):
    """Four ``secretrun --watch`` supervisors, 5 secrets each, polling every
    100 ms (200 requests/s) against a 20/s quota: the 429s fall as they back
    off, the requests settle at about the quota, and a rotation still
    restarts every command with the new value. About 20 s."""
    import json
    import time

    from tests.conftest import CANARY, assert_no_canary
    from tests.vault_server import put_kv2
    from tests.watch_fixtures import Watched, manifest_text, wait_for

    root = bao.server.client()
    root.sys.enable_secrets_engine("kv", path="fleet", options={"version": "2"})
    for k in range(5):
        put_kv2(root, f"s{k}", {"value": f"{CANARY}-{k}"}, mount="fleet")
    env = "\n".join(f'S{k} = "${{vault:fleet/s{k}#value}}"' for k in range(5))
    provider = f'[providers.vault]\ntype = "vault"\naddress = "{bao.url}"'
    pods = []
    try:
        for i in range(4):
            home = tmp_path / f"pod{i}"
            home.mkdir()
            status = home / "status.json"
            text = manifest_text(home, {"poll_interval": '"100ms"', "status_file": f'"{status}"'},
                                 env=env, provider=provider)
            pods.append((Watched(home, text, env={"VAULT_TOKEN": bao.root}, log_level="info"), status))

        def totals():
            throttled = polls = ready = 0
            for _, status in pods:
                try:
                    data = json.loads(status.read_text())
                except (OSError, ValueError):
                    continue
                throttled += data.get("throttled_polls", 0)
                polls += data.get("polls", 0)
                ready += 1
            return throttled, polls, ready

        # The quota comes once all four run (a command that cannot start for
        # throttling exits 69 after its retries, which is another story).
        # A mount of its own: quotas match paths, and no other test reads this one.
        wait_for(lambda: totals()[2] == 4, 20, "four supervisors running")
        root.write_data("sys/quotas/rate-limit/fleet-test", data={"path": "fleet/", "rate": 20, "interval": "1s"})
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < 11.0:
            samples.append((time.monotonic() - started, *totals()[:2]))
            time.sleep(0.2)

        def rate(lo, hi, column):
            inside = [s for s in samples if lo <= s[0] < hi]
            return (inside[-1][column] - inside[0][column]) / (inside[-1][0] - inside[0][0])

        early, late = rate(0.0, 2.0, 1), rate(7.5, 11.0, 1)
        print(f"429s/s: {early:.1f} in the first 2 s, {late:.1f} at 7.5-11 s; polls/s at 7.5-11 s: "
              f"{rate(7.5, 11.0, 2):.1f} (quota 20 requests/s, 5 requests a poll)")
        # Each throttled poll is one 429: the refresh stops at it and does not retry.
        # Without the back-off the four would poll 40 times a second, 36 of them
        # refused; with it the 429s fall, to a fraction of that.
        assert late < early and late < 0.25 * 36, (early, late)
        # Requests: 5 for an answered poll, 1 for a refused one: about the quota.
        polls = rate(7.5, 11.0, 2)
        assert 5 * (polls - late) + late < 1.5 * 20, (polls, late)
        for w, status in pods:
            data = json.loads(status.read_text())
            assert data["throttled_polls"] > 0 and data["poll_interval_now"] >= 0.1
            assert w.stderr.count("throttling the polls") <= 3 and w.alive()

        # The rotation's own write shares the quota with the fleet: retried until admitted.
        import hvac

        def rotate():
            try:
                return put_kv2(root, "s0", {"value": f"{CANARY}-rotated"}, mount="fleet")
            except hvac.exceptions.RateLimitExceeded:
                return None

        wait_for(rotate, 10, "the rotation's write to be admitted")
        for w, _ in pods:
            starts = w.records.wait_starts(2, timeout=25)
            assert starts[-1]["env"]["S0"] == f"{CANARY}-rotated"
            assert starts[-1]["env"]["S4"] == f"{CANARY}-4"
        for w, _ in pods:
            assert_no_canary(w.stderr, w.stdout)
            assert_no_canary(w.stderr, w.stdout, canary=f"{CANARY}-rotated")
    finally:
        for w, _ in pods:
            w.close()
        root.delete("sys/quotas/rate-limit/fleet-test")
        root.sys.disable_secrets_engine("fleet")
