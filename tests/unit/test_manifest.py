import signal

import pytest

from secretrun.errors import ManifestError
from secretrun.manifest import load, parse_duration, parse_signal


def problems(path, **kw):
    with pytest.raises(ManifestError) as info:
        load(str(path), **kw)
    assert info.value.code == 78
    return "\n".join(str(p) for p in info.value.problems)


def test_spec_example_loads(manifest):
    path = manifest("""
        version = 1
        [settings]
        inherit_env = true
        poll_interval = "30s"
        on_change = "signal"
        reload_signal = "SIGHUP"
        kill_timeout = "1m30s"
        splay = "250ms"
        [providers.vault]
        type = "vault"
        address = "http://127.0.0.1:8200"
        auth = { method = "approle", role_id = "${env:VAULT_ROLE_ID}", secret_id_file = "/run/secrets/id" }
        [providers.local]
        type = "dotenv"
        path = ".env"
        [env]
        DATABASE_URL = "${vault:secret/app/db#url}"
        JWT_SECRET   = { value = "${local:JWT}", min_length = 32 }
        TLS_KEY      = { value = "${vault:secret/app/tls#key}", file = true, on_change = "signal" }
        LOG_LEVEL    = "info"
        [[import]]
        from = "${vault:secret/app/config}"
        prefix = "APP_"
        [profiles.development]
        settings.fallback = ".env.development"
        providers.vault.address = "http://127.0.0.1:8201"
    """)
    m = load(str(path))
    assert m.settings.poll_interval == 30 and m.settings.kill_timeout == 90 and m.settings.splay == 0.25
    assert m.settings.reload_signal == signal.SIGHUP and m.settings.on_change == "signal"
    assert m.env["JWT_SECRET"].min_length == 32 and m.env["TLS_KEY"].file
    assert m.imports[0].prefix == "APP_"
    # the option template is found, so the provider is built after ``env``
    assert m.providers["vault"].templates[0][0] == ("auth", "role_id")
    dev = load(str(path), profile="development")
    assert dev.settings.fallback == ".env.development"
    assert dev.providers["vault"].options["address"] == "http://127.0.0.1:8201"
    assert dev.providers["vault"].options["auth"]["method"] == "approle"  # merged, not replaced


def test_every_problem_is_reported_at_once(manifest):
    text = problems(manifest("""
        version = 1
        colour = 1
        [settings]
        poll_interval = "soon"
        stop_signal = "SIGNOPE"
        on_change = "reboot"
        [providers.v]
        type = "hashivault"
        [providers.w]
        [env]
        A = "${nope:x}"
        B = "${v:x"
        "BAD-NAME" = "x"
        C = { value = "x", min_length = "3", pattern = "(" }
        D = { valu = "x" }
        [[import]]
        from = "prefix-${env:x}"
    """))
    for expected in ("'colour'", "poll_interval", "SIGNOPE", "reboot", "hashivault", "providers.w has no 'type'",
                     "undeclared provider 'nope'", "not closed", "BAD-NAME", "min_length", "pattern",
                     "unknown key 'valu'", "exactly one reference"):
        assert expected in text


@pytest.mark.parametrize("body, expected", [
    ("", "empty"),
    ("version = 2", "unsupported version"),
    ("[env]\nA = 'x'", "'version = 1' is required"),
    ("version = 1\n[env\n", "TOML syntax error"),
])
def test_bad_files(manifest, body, expected):
    assert expected in problems(manifest(body))


def test_toml_syntax_error_names_line_and_column(manifest):
    assert "line 3" in problems(manifest("version = 1\n[env]\nA = \n"))


def test_missing_and_directory(tmp_path):
    assert "not found" in problems(tmp_path / "nope.toml")
    assert "is a directory" in problems(tmp_path)


def test_unknown_profile_lists_the_known_ones(manifest):
    text = problems(manifest("version = 1\n[profiles.dev]\nsettings.watch = true\n"), profile="prod")
    assert "'prod' does not exist (profiles: dev)" in text


def test_profile_that_changes_a_provider_type_replaces_it(manifest):
    path = manifest("""
        version = 1
        [providers.store]
        type = "vault"
        address = "http://x"
        [env]
        A = "${store:A}"
        [profiles.local.providers.store]
        type = "dotenv"
        path = ".env"
        [profiles.local.env]
        B = "literal"
        [[profiles.local.import]]
        from = "${store:*}"
    """)
    m = load(str(path), profile="local")
    assert dict(m.providers["store"].options) == {"type": "dotenv", "path": ".env"}
    assert set(m.env) == {"A", "B"} and len(m.imports) == 1


def test_provider_option_cycle_is_refused(manifest):
    text = problems(manifest("""
        version = 1
        [providers.a]
        type = "dotenv"
        path = "${b:x}"
        [providers.b]
        type = "dotenv"
        path = "${a:y}"
    """))
    assert "cycle" in text


def test_strict_turns_a_fallback_off_instead_of_refusing_it(manifest):
    # A base with a fallback and a strict production profile: TOML cannot unset a key.
    m = load(str(manifest('version = 1\n[settings]\nfallback = ".env"\n'
                             '[profiles.production.settings]\nstrict = true\n')), "production")
    assert m.settings.strict and m.settings.fallback == ".env"


def test_strict_refuses_warning_about_missing_secrets(manifest):
    text = problems(manifest('version = 1\n[settings]\nstrict = true\non_missing = "warn"\n'))
    assert 'on_missing = "warn" cannot be used with settings.strict' in text


def test_extra_env_is_validated(manifest):
    path = manifest("version = 1\n")
    text = problems(path, extra_env=(("1X", "a"), ("Y", "${nope:z}")))
    assert "'1X'" in text and "undeclared provider 'nope'" in text


@pytest.mark.parametrize("text, seconds", [("250ms", 0.25), ("30s", 30), ("5m", 300), ("1h", 3600),
                                           ("1h30m", 5400), (10, 10.0), ("0s", 0), ("90d", 7776000)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "s", "-1s", "1w", "1s 2s", True, -3])
def test_bad_durations(text):
    assert parse_duration(text) is None


def test_signals():
    assert parse_signal("SIGHUP") == parse_signal("hup") == signal.SIGHUP
    assert parse_signal("SIGNOPE") is None and parse_signal(True) is None
