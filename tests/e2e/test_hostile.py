"""Hostile input: whatever a manifest or a secret holds, secretrun answers
with a clear error and an exit code, never a traceback, in bounded time
and memory.

Property-based (hypothesis, derandomized so CI sees the same examples every
run) for the template parser and the manifest loader; a handful of
generated manifests through the real command; and the extremes by hand:
10,000 variables, JSON nested 10,000 deep, a 10 MB value, invalid UTF-8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secretrun import manifest as manifest_mod
from secretrun.errors import ManifestError
from secretrun.template import Literal, Ref, TemplateError, parse
from tests.conftest import CANARY, ROOT, assert_no_canary

FAST = settings(max_examples=200, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# --- template.parse ---------------------------------------------------------------------------

# Text made mostly of the template syntax's own characters finds the edges.
SYNTAX = st.text(alphabet=st.sampled_from(list("${}:#?=.$ab-_/\\\x00é")), max_size=60)


@FAST
@given(st.one_of(st.text(max_size=200), SYNTAX))
def test_template_parse_never_raises(text):
    out = parse(text)
    if isinstance(out, TemplateError):
        assert out.column >= 1 and out.message
    else:
        assert isinstance(out, tuple) and all(isinstance(a, (Literal, Ref)) for a in out)
        # Nothing is lost: literal text and references account for the input.
        if "$" not in text:
            assert "".join(a.text for a in out) == text


# --- manifest.load ------------------------------------------------------------------------------

_DIR: Path = Path()


@pytest.fixture(scope="module", autouse=True)
def _hostile_dir(tmp_path_factory):
    """One directory for this module's generated manifests, under pytest's
    own temporary tree (cleaned by pytest), not a mkdtemp left in /tmp.
    Module scope: hypothesis refuses function-scoped fixtures in @given."""
    global _DIR
    _DIR = tmp_path_factory.mktemp("hostile")
    yield _DIR


def load_bytes(data: bytes):
    """``manifest.load`` on these bytes: a Manifest, or the ManifestError."""
    path = _DIR / "secretrun.toml"
    path.write_bytes(data)
    try:
        return manifest_mod.load(str(path))
    except ManifestError as exc:
        assert exc.code == 78 and exc.problems
        assert all(p.message for p in exc.problems)
        return exc


def toml_value(value) -> str:
    """A TOML rendering of a JSON-like value, inline tables for mappings.
    JSON string escapes are TOML's too (``\\u0000`` included)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict) -> str:
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items())


KEYS = st.one_of(st.sampled_from(["value", "type", "path", "required", "default", "file", "min_length",
                                  "pattern", "forbid", "on_change", "from", "prefix", "timeout", "retries",
                                  "poll_interval", "auth", "method", "address", "watch", "strict"]),
                 st.text(max_size=12))
SCALARS = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=30),
                    st.sampled_from(["${env:HOME}", "${f:x#a.b}", "${", "${x}", "10s", "SIGHUP", "[", "(?P<"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)
ENV_NAMES = st.one_of(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), st.text(max_size=10),
                      st.sampled_from(["1ABC", "A-B", "A B", "A=B", "\x00", "é", ""]))
MANIFESTS = st.fixed_dictionaries(
    {"version": st.one_of(st.just(1), SCALARS)},
    optional={
        "settings": st.dictionaries(KEYS, VALUES, max_size=5),
        "providers": st.dictionaries(st.text(max_size=8), st.one_of(
            st.fixed_dictionaries({"type": st.sampled_from(["file", "env", "dotenv", "vault", "nope"])},
                                  optional={"path": VALUES, "prefix": VALUES, "x": VALUES}), VALUES), max_size=3),
        "env": st.dictionaries(ENV_NAMES, st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=5)), max_size=6),
        "import": st.one_of(st.lists(st.dictionaries(KEYS, VALUES, max_size=4), max_size=3), VALUES),
        "profiles": st.dictionaries(st.text(max_size=6), VALUES, max_size=2),
        "extra": VALUES,
    })


@FAST
@given(MANIFESTS)
def test_structured_random_manifests_load_or_are_refused_with_78(doc):
    load_bytes(toml_document(doc).encode("utf-8"))


TOMLISH = st.lists(st.one_of(
    st.sampled_from(["version = 1", "[settings]", "[env]", "[providers.f]", 'type = "file"', "[[import]]",
                     "[profiles.p]", 'A = "${f:x}"', "A = {", "timeout = -1", 'retries = "x"', "x = [[[", "}",
                     '"\\ud800" = 1', "a.b.c = 1", "[env.A]", 'value = "${"', "\x00", "\udcff"]),
    st.text(max_size=30)), max_size=12).map("\n".join)


@FAST
@given(st.one_of(st.binary(max_size=300), TOMLISH.map(lambda t: t.encode("utf-8", "surrogateescape"))))
def test_arbitrary_bytes_load_or_are_refused_with_78(data):
    load_bytes(data)


def test_invalid_utf8_nul_and_bad_names_are_named():
    assert "not valid UTF-8 (byte 17)" in str(load_bytes(b'version = 1\nA = "\xff"\n'))
    refused = load_bytes(b'version = 1\n[env]\n"1BAD" = "x"\n"A-B" = "y"\n"A\\u0000" = "z"\n')
    for name in ("1BAD", "A-B"):
        assert name in str(refused)
    deep = load_bytes(b"version = 1\nx = " + b"[" * 10_000 + b"]" * 10_000 + b"\n")
    assert "nested too deeply" in str(deep)


# --- through the real command ---------------------------------------------------------------------


# Linux carries a process's peak RSS across exec, so a child forked straight
# from this (large) test process would report the test process's peak. A
# small wrapper forks secretrun instead and reports its children's peak.
_MEASURE = ("import resource, subprocess, sys\n"
            "code = subprocess.call(sys.argv[2:])\n"
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
            "sys.exit(code)\n")


def run_secretrun(args, cwd, env=None, timeout=60):
    """The real command in a subprocess, with its own peak RSS."""
    out, err = Path(cwd) / "out.txt", Path(cwd) / "err.txt"
    peak = Path(cwd) / "peak-rss.txt"
    full_env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)}
    full_env.update(env or {})
    started = time.monotonic()
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-c", _MEASURE, str(peak), sys.executable, "-m", "secretrun", *args],
                                cwd=cwd, env=full_env, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise AssertionError(f"secretrun {args} did not finish within {timeout}s")
            time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"),
            time.monotonic() - started, int(peak.read_text()) / 1024)


BAD = [
    b"version = 1\n[env]\nA = 3\n\"B C\" = \"x\"\n[settings]\ntimeout = \"soon\"\n",
    b"version = 2\nunknown = {a = [1, {b = \"${\"}]}\n",
    b"version = 1\n[env]\nA = { value = \"${nope:x}\", min_length = \"long\", pattern = \"(\" }\n",
    b"version = 1\n[providers.f]\ntype = 7\n[[import]]\nfrom = 3\n",
    b"\xef\xbb\xbfversion = 1\n\x00\n",
    b"version = 1\nA = \"\xc3\x28\"\n",
    b"version = 1\nx = " + b"{a=" * 3000 + b"1" + b"}" * 3000 + b"\n",
]


def assert_refused_by_the_cli(data: bytes, cwd: Path) -> None:
    path = Path(cwd) / "bad.toml"
    path.write_bytes(data)
    for args in (["-m", str(path), "--", "true"], ["check", "-m", str(path)]):
        code, out, err, _, _ = run_secretrun(args, cwd)
        assert code == 78, (data[:200], args, err)
        assert "Traceback" not in err and "internal error" not in err and err.strip()


@pytest.mark.parametrize("data", BAD, ids=range(len(BAD)))
def test_bad_manifests_through_the_cli_exit_78_without_a_traceback(data, tmp_path):
    assert_refused_by_the_cli(data, tmp_path)


@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(MANIFESTS.map(lambda d: dict(d, version="one")))
def test_generated_bad_manifests_through_the_cli_exit_78(tmp_path, doc):
    assert_refused_by_the_cli(toml_document(doc).encode("utf-8"), tmp_path)


# --- extremes, with time and memory bounds ------------------------------------------------------

# Generous bounds: these catch something quadratic or a copy per variable,
# not a slow machine.
TIME_BOUND = 30.0
RSS_BOUND_MB = 300.0


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    return d


def manifest_for(tmp_path, store, env_lines: str) -> Path:
    path = tmp_path / "secretrun.toml"
    path.write_text(f'version = 1\n[providers.f]\ntype = "file"\npath = "{store}"\n[env]\n{env_lines}')
    return path


def test_ten_thousand_variables(tmp_path, store):
    (store / "secret").write_text(json.dumps({"k": CANARY}))
    lines = "".join(f'V{i} = "${{f:secret#k}}-{i}"\n' for i in range(10_000))
    path = manifest_for(tmp_path, store, lines)
    code, out, err, took, rss = run_secretrun(["env", "-m", str(path), "--format", "json"], tmp_path)
    assert code == 0, err
    values = json.loads(out)
    assert len(values) == 10_000 and set(values.values()) == {"*****"}
    assert took < TIME_BOUND and rss < RSS_BOUND_MB, (took, rss)
    assert_no_canary(out, err)


def test_json_nested_ten_thousand_deep(tmp_path, store):
    depth = 10_000
    (store / "deep").write_text('{"a":' * depth + json.dumps(CANARY) + "}" * depth)
    path = manifest_for(tmp_path, store, 'A = "${f:deep#a.a}"\nB = "${f:deep#a}"\n')
    code, out, err, took, rss = run_secretrun(["-m", str(path), "--", "true"], tmp_path)
    assert code == 1, err
    assert "nested too deeply" in err and "A" in err and "B" in err
    assert "Traceback" not in err and "internal error" not in err
    assert took < TIME_BOUND and rss < RSS_BOUND_MB, (took, rss)
    assert_no_canary(out, err)


def test_a_ten_megabyte_value_needs_file_true(tmp_path, store):
    big = (CANARY * (10 * 1024 * 1024 // len(CANARY) + 1))[:10 * 1024 * 1024]
    (store / "big").write_text(big)
    path = manifest_for(tmp_path, store, 'BIG = "${f:big}"\n')
    code, out, err, took, rss = run_secretrun(["-m", str(path), "--", "true"], tmp_path)
    assert code == 65 and "use file = true" in err and "BIG" in err, err
    assert took < TIME_BOUND and rss < RSS_BOUND_MB, (took, rss)
    assert_no_canary(out, err)
    path = manifest_for(tmp_path, store, 'BIG = { value = "${f:big}", file = true }\n')
    child = [sys.executable, "-c", "import os; print(os.path.getsize(os.environ['BIG']))"]
    code, out, err, took, rss = run_secretrun(["-m", str(path), "--", *child], tmp_path)
    assert code == 0 and out.strip() == str(len(big)), err
    assert took < TIME_BOUND and rss < RSS_BOUND_MB, (took, rss)
    assert_no_canary(out, err)


def test_invalid_utf8_and_nul_in_secrets(tmp_path, store):
    (store / "binary").write_bytes(b"\xff\xfe" + CANARY.encode())
    (store / "nul").write_bytes(CANARY.encode() + b"\x00tail")
    path = manifest_for(tmp_path, store, 'A = "${f:binary}"\nB = "${f:nul}"\n')
    code, out, err, took, rss = run_secretrun(["-m", str(path), "--", "true"], tmp_path)
    assert code == 65 and "A" in err and "B" in err and "file = true" in err, err
    assert "Traceback" not in err
    assert_no_canary(out, err)
