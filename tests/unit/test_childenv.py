"""``childenv.build`` directly, one row per rule: a manifest, what the stores
answered (a snapshot), the environment secretrun was started in, and what the
child gets or which problem is reported. No process, no store."""

from __future__ import annotations

import textwrap

import pytest

from secretrun.childenv import build
from secretrun.errors import Denied, Kind, NotFound, Unavailable
from secretrun.manifest import load
from secretrun.providers.base import Secret, SecretId
from tests.conftest import CANARY

HEAD = """
version = 1
[providers.s]
type = "dotenv"
"""


def sid(path, tree=False):
    return SecretId("s", path, None, tree)


STORE = {
    sid("DB"): Secret({"user": "app", "password": CANARY}, version="7"),
    sid("TOKEN"): Secret("t0ken-value-0123456789", version="3"),
    sid("GONE"): NotFound("GONE does not exist"),
    sid("NOPE"): Denied("GONE: permission denied"),
    sid("DOWN"): Unavailable("the store cannot be reached"),
    sid("WEAK"): Secret("changeme"),
    sid("EMPTY"): Secret(""),
    sid("NUL"): Secret("a\x00b"),
    sid("BIN"): Secret(b"\xff\xfe\x00binary"),
    sid("CONF", tree=True): Secret({"LOG_LEVEL": "debug", "MODE": "fast", "bad key": "x"}),
}


def run(tmp_path, env_block, settings="", environ=None, extra=(), files=None):
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "secretrun.toml"
    path.write_text(HEAD + (f"[settings]\n{settings}\n" if settings else "") + textwrap.dedent(env_block))
    manifest = load(str(path), None, tuple(extra))
    return build(manifest, STORE, {"PATH": "/bin", **(environ or {})}, consumed=("VAULT_TOKEN",))


# --- values that resolve: (env block, settings, expected variables) ---------------------------
RESOLVED = [
    ("literal", '[env]\nA = "plain"', "", {"A": "plain"}),
    ("one field", '[env]\nU = "${s:DB#user}"', "", {"U": "app"}),
    ("a template of two fields", '[env]\nDSN = "pg://${s:DB#user}:${s:DB#password}@db"', "",
     {"DSN": f"pg://app:{CANARY}@db"}),
    ("missing takes the default", '[env]\nG = { value = "${s:GONE}", default = "dflt" }', "", {"G": "dflt"}),
    ("missing and optional is unset", '[env]\nG = { value = "${s:GONE}", required = false }\nA = "a"', "",
     {"A": "a"}),
    ("an import with a prefix", '[[import]]\nfrom = "${s:CONF}"\nprefix = "C_"\nnormalize = true', "",
     {"C_LOG_LEVEL": "debug", "C_MODE": "fast", "C_BAD_KEY": "x"}),
    ("[env] wins over an import", '[[import]]\nfrom = "${s:CONF}"\nnormalize = true\n[env]\nMODE = "slow"', "",
     {"MODE": "slow", "LOG_LEVEL": "debug", "BAD_KEY": "x"}),
]


@pytest.mark.parametrize("env_block,settings,expected", [r[1:] for r in RESOLVED], ids=[r[0] for r in RESOLVED])
def test_what_the_child_gets(tmp_path, env_block, settings, expected):
    result = run(tmp_path, env_block, settings)
    assert result.problems == ()
    managed = {name: result.env[name] for name in result.managed}
    assert managed == expected
    assert set(result.managed) == set(expected)


# --- what is refused: (env block, settings, variable, kind, words in the message) -------------
REFUSED = [
    ("denied never falls to a default", '[env]\nN = { value = "${s:NOPE}", default = "x" }', "",
     "N", Kind.DENIED, "permission denied"),
    ("unreachable never falls to a default", '[env]\nD = { value = "${s:DOWN}", default = "x" }', "",
     "D", Kind.UNAVAILABLE, "cannot be reached"),
    ("strict ignores defaults", '[env]\nG = { value = "${s:GONE}", default = "x" }', "strict = true",
     "G", Kind.MISSING, "does not exist"),
    ("strict refuses placeholders", '[env]\nW = "${s:WEAK}"', "strict = true", "W", Kind.INVALID, "placeholder"),
    ("strict refuses empty values", '[env]\nE = "${s:EMPTY}"', "strict = true", "E", Kind.INVALID, "empty"),
    ("min_length", '[env]\nT = { value = "${s:TOKEN}", min_length = 64 }', "", "T", Kind.INVALID, "min_length 64"),
    ("pattern", '[env]\nT = { value = "${s:TOKEN}", pattern = "[0-9]+" }', "", "T", Kind.INVALID, "pattern"),
    ("a NUL byte", '[env]\nZ = "${s:NUL}"', "", "Z", Kind.INVALID, "NUL byte"),
    ("binary in a variable", '[env]\nB = "${s:BIN}"', "", "B", Kind.INVALID, "binary"),
    ("binary inside a template", '[env]\nB = "x-${s:BIN}"', "", "B", Kind.MISSING, "binary secret"),
    ("a missing field", '[env]\nF = "${s:DB#nope}"', "", "F", Kind.MISSING, "no field 'nope'"),
    ("an import key that is no name", '[[import]]\nfrom = "${s:CONF}"', "", "[[import]] ${s:CONF}", Kind.INVALID,
     "bad key"),
]


@pytest.mark.parametrize("env_block,settings,variable,kind,words", [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])
def test_what_is_refused(tmp_path, env_block, settings, variable, kind, words):
    result = run(tmp_path, env_block, settings)
    [problem] = [p for p in result.problems if p.variable == variable or variable in (p.variable or "")]
    assert problem.kind == kind and words in problem.message
    assert variable not in result.env
    assert CANARY not in str(result.problems)


# --- precedence and the environment -----------------------------------------------------------


def test_extras_win_over_env_which_wins_over_inherited(tmp_path):
    result = run(tmp_path, '[env]\nA = "manifest"\nB = "manifest"', environ={"A": "inherited", "C": "inherited"},
                 extra=[("B", "extra")])
    assert (result.env["A"], result.env["B"], result.env["C"]) == ("manifest", "extra", "inherited")


def test_inherit_env_false_keeps_only_path(tmp_path):
    result = run(tmp_path, '[env]\nA = "a"', "inherit_env = false", environ={"HOME": "/root"})
    assert result.env == {"PATH": "/bin", "A": "a"}


def test_login_credentials_are_kept_from_the_child_unless_the_manifest_passes_them(tmp_path):
    assert "VAULT_TOKEN" not in run(tmp_path, '[env]\nA = "a"', environ={"VAULT_TOKEN": "t"}).env
    passed = run(tmp_path, '[env]\nVAULT_TOKEN = "for-the-child"', environ={"VAULT_TOKEN": "t"})
    assert passed.env["VAULT_TOKEN"] == "for-the-child"


def test_file_true_goes_to_files_not_env(tmp_path):
    result = run(tmp_path, '[env]\nCERT = { value = "${s:BIN}", file = true }')
    assert result.problems == () and "CERT" not in result.env
    assert result.files == {"CERT": b"\xff\xfe\x00binary"}


def test_name_file_convention(tmp_path):
    result = run(tmp_path, '[env]\nA = "a"', "file_vars = true", files={"pw.txt": "from-a-file\n"},
                 environ={"DB_PASSWORD_FILE": str(tmp_path / "pw.txt")})
    assert result.env["DB_PASSWORD"] == "from-a-file" and "DB_PASSWORD" in result.managed


def test_fallback_file_gives_the_value_by_name_whatever_the_failure(tmp_path):
    result = run(tmp_path, '[env]\nN = "${s:NOPE}"\nD = "${s:DOWN}"', 'fallback = ".env.local"',
                 files={".env.local": "N=from-fallback\nD=also\n"})
    assert result.problems == ()
    assert (result.env["N"], result.env["D"]) == ("from-fallback", "also")
    assert result.sources["N"] == "fallback .env.local"


def test_versions_sources_and_on_change(tmp_path):
    result = run(tmp_path, '[env]\nT = { value = "${s:TOKEN}", on_change = "signal" }\nU = "${s:DB#user}"',
                 'on_change = "exit"')
    assert result.versions == {"T": "3", "U": "7"}
    assert result.sources == {"T": "${s:TOKEN}", "U": "${s:DB#user}"}
    assert result.on_change == {"T": "signal", "U": "exit"}
    assert result.values == ["t0ken-value-0123456789", "app"]    # what was delivered, for masking
