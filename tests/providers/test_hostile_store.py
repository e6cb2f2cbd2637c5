"""A hostile or broken store (issue 13): whoever can write one secret, or
sits on the network path to a store, cannot hang, bloat or unmask
secretrun. Each case feeds the real command the hostile value or the
trickling store (``tests/trickle_server.py``, one byte every 0.3 s on
127.0.0.1) and checks a bounded, documented outcome."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from tests.conftest import CANARY, assert_no_canary
from tests.trickle_server import TrickleServer, kv1_body
from tests.watch_fixtures import Watched, manifest_text, rotate, wait_for


def vault_manifest(url: str, settings: str = "") -> str:
    return f"""
        version = 1
        [settings]
        timeout = "1s"
        retries = 1
        {settings}
        [providers.vault]
        type = "vault"
        address = "{url}"
        [env]
        DB_PASSWORD = "${{vault:secret/db#password}}"
    """


@pytest.fixture
def trickle():
    with TrickleServer() as server:
        yield server


# --- 2. a store that trickles --------------------------------------------------------------


def test_a_trickling_vault_fails_within_the_deadline_naming_variable_and_reference(trickle, manifest,
                                                                                    secretrun):
    manifest(vault_manifest(trickle.url))
    started = time.monotonic()
    run = secretrun(child=True, env={"VAULT_TOKEN": "root"}, timeout=60)
    took = time.monotonic() - started
    assert run.code == 69, run
    # 2 attempts x 2 s deadline + one backoff (at most 0.2 s), plus start-up.
    assert took < 12, took
    assert "DB_PASSWORD" in run.stderr and "${vault:secret/db#password}" in run.stderr
    assert "no complete answer within 3s" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_trickling_aws_endpoint_fails_within_the_deadline(trickle, manifest, secretrun):
    manifest(f"""
        version = 1
        [settings]
        timeout = "1s"
        retries = 0
        [providers.aws]
        type = "aws-secretsmanager"
        region = "us-east-1"
        endpoint_url = "{trickle.url}"
        [env]
        API_KEY = "${{aws:app/api#key}}"
    """)
    started = time.monotonic()
    run = secretrun(child=True, env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
                    timeout=60)
    assert run.code == 69, run
    assert time.monotonic() - started < 12
    assert "API_KEY" in run.stderr and "no complete answer within 3s" in run.stderr


def test_a_store_that_starts_trickling_under_watch_counts_as_failed_polls_and_max_stale_fires(tmp_path,
                                                                                            trickle):
    trickle.healthy(kv1_body({"password": CANARY}))
    text = vault_manifest(trickle.url, 'watch = true\npoll_interval = "200ms"\nmax_stale = "3s"\n'
                                       'kill_timeout = "2s"\nretries = 0')
    text = text.replace("retries = 1\n", "")
    w = Watched(tmp_path, text, ["--print", "DB_PASSWORD"], env={"VAULT_TOKEN": "root"})
    try:
        w.records.wait_starts(1)
        trickle.trickle()
        started = time.monotonic()
        assert w.wait(timeout=30) == 69
        # max_stale 3 s after the last good poll, each failed poll bounded by its 2 s deadline.
        assert time.monotonic() - started < 15
        assert "could not refresh the secrets" in w.stderr and "max_stale" in w.stderr
        assert_no_canary(w.stderr)      # (the child printed its value on stdout itself)
    finally:
        w.close()


# --- 1. catastrophic backtracking in `pattern` ----------------------------------------------


EVIL = "^([A-Za-z0-9]+)*$"


def test_a_hostile_value_against_a_backtracking_pattern_is_checked_at_once(tmp_path, manifest, secretrun):
    store = tmp_path / "store"
    store.mkdir()
    (store / "token").write_text("a" * 40 + "!")          # hours for Python's re
    manifest(f"""
        version = 1
        [providers.f]
        type = "file"
        path = "{store}"
        [env]
        TOKEN = {{ value = "${{f:token}}", pattern = '{EVIL}' }}
    """)
    started = time.monotonic()
    run = secretrun("check")
    assert run.code == 65 and "TOKEN" in run.stdout + run.stderr
    assert time.monotonic() - started < 10


def test_a_pattern_re2_cannot_run_is_refused_with_78_naming_the_variable(manifest, secretrun):
    manifest("""
        version = 1
        [env]
        TOKEN = { value = "x", pattern = '(a)\\1' }
        OTHER = { value = "y", pattern = '(?=y)y' }
    """)
    run = secretrun(child=True)
    assert run.code == 78
    assert "TOKEN" in run.stderr and "OTHER" in run.stderr and "RE2" in run.stderr
    assert "WARNING" not in run.stderr and "re2.cc" not in run.stderr


# --- 5. mask_output without --watch ---------------------------------------------------------


def test_mask_output_without_watch_is_refused_not_ignored(secrets_dir, manifest, secretrun):
    manifest(manifest_text(secrets_dir, {"mask_output": "true"}).replace("watch = true", "watch = false"))
    run = secretrun("--", sys.executable, "-c", "import os; print(os.environ['SECRET'])")
    assert run.code == 78 and "mask_output" in run.stderr and "watch" in run.stderr
    assert_no_canary(run.stdout, run.stderr)


# --- 7. an oversized rotated value ----------------------------------------------------------


def test_an_oversized_rotated_value_keeps_the_last_good_values(tmp_path, secrets_dir):
    w = Watched(tmp_path, manifest_text(secrets_dir), ["--print", "SECRET"])
    try:
        (first,) = w.records.wait_starts(1)
        rotate(secrets_dir / "secret", CANARY * 6000)         # > 128 KiB
        w.wait_log("one environment variable can hold")
        time.sleep(0.5)
        assert len(w.records.starts()) == 1 and w.alive()
        rotate(secrets_dir / "secret", CANARY + "-2")
        w.records.wait_starts(2)
        w.send(signal.SIGTERM)
        assert w.wait() == 143
        assert "the value is larger than" in w.stderr
        assert_no_canary(w.stderr)
    finally:
        w.close()


# --- 9. second lines of defence ---------------------------------------------------------------


def test_json_logs_redact_fields_before_serialising():
    import io

    from secretrun.logs import Logger

    value = 'quote"back\\slash\x07é-' + CANARY
    out = io.StringIO()
    log = Logger("info", "json", stream=out)
    log.redact.add([value])
    log.warning(f"failed: {value}", error=value, nested={"list": [value]})
    line = out.getvalue()
    record = json.loads(line)
    assert record["error"] == "*****" and record["nested"] == {"list": ["*****"]}
    assert record["msg"] == "failed: *****"
    assert_no_canary(line)


def test_check_passes_its_table_and_warnings_through_the_redactor(tmp_path, manifest, secretrun):
    # A provider option rendered from a secret: the dotenv file's path is a value.
    secret_dir = tmp_path / CANARY
    secret_dir.mkdir()
    dotenv = secret_dir / "app.env"
    dotenv.write_text("A=1\n")
    dotenv.chmod(0o644)
    store = tmp_path / "store"
    store.mkdir()
    (store / "where").write_text(str(dotenv))
    manifest(f"""
        version = 1
        [providers.f]
        type = "file"
        path = "{store}"
        [providers.local]
        type = "dotenv"
        path = "${{f:where}}"
        [env]
        A = "${{local:A}}"
    """)
    for fmt in ("table", "json"):
        run = secretrun("check", "--format", fmt)
        assert run.code == 0, run
        assert "readable" in run.stdout + run.stderr
        assert_no_canary(run.stdout, run.stderr)


# --- the deadlines themselves ---------------------------------------------------------------


def test_a_call_past_its_deadline_is_unavailable_and_hanging_calls_are_capped():
    import threading

    from secretrun import deadline
    from secretrun.errors import Unavailable

    release = threading.Event()
    started = time.monotonic()
    for _ in range(deadline.HANGING_MAX):
        with pytest.raises(Unavailable, match="no complete answer within 0.1s"):
            deadline.within(0.1, release.wait, "slowstore")
    assert time.monotonic() - started < 3
    assert deadline.hanging("slowstore") == deadline.HANGING_MAX
    with pytest.raises(Unavailable, match="still waiting"):
        deadline.within(10, lambda: "never called", "slowstore")
    release.set()
    wait_for(lambda: deadline.hanging("slowstore") == 0, what="the abandoned calls to end")
    assert deadline.within(1, lambda: "answer", "slowstore") == "answer"
    with pytest.raises(KeyError):
        deadline.within(1, lambda: {}["x"], "slowstore")


def test_a_poll_past_its_deadline_counts_as_failed_and_max_stale_fires(tmp_path):
    """In process: a refresh that never returns (a store SDK stuck below
    every timeout) is given up on; the command is stopped at max_stale."""
    import threading

    from secretrun.supervise import Supervisor
    from tests.watch_fixtures import CHILD_APP, PY, FakeLog, FakeSession, Records, rendered, settings

    rec = Records(tmp_path / "rec")
    stuck, hung = threading.Event(), []

    def refresh():
        if not rec.starts():
            return first
        hung.append(1)
        stuck.wait(60)
        return first

    first = rendered({"SECRET": CANARY})
    session = FakeSession(settings(poll_interval=0.05, max_stale=1.0), first, [refresh])
    log = FakeLog()
    sup = Supervisor(session, [PY, CHILD_APP, "--dir", str(rec.dir)], log, subreaper=False)
    sup.poll_deadline = 0.3
    started = time.monotonic()
    try:
        assert sup.run() == 69
    finally:
        stuck.set()
        for record in rec.starts():
            try:
                os.killpg(record["pgid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert time.monotonic() - started < 10
    assert any("did not finish within 0.3s" in str(f) for _, _, f in log.records)
    assert len(hung) == 1          # no pile of threads behind the stuck one
    assert_no_canary(log.text)
