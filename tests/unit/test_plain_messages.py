"""Messages say what happened in words (issue 18): no Python or SDK class
names, and a text log line does not repeat the variable its message names."""

from __future__ import annotations

import io
import json

import pytest

from secretrun.errors import provider_bug
from secretrun.logs import Logger
from tests.conftest import CANARY, assert_no_canary


def _line(fmt: str, msg: str, **fields) -> str:
    out = io.StringIO()
    Logger("debug", fmt, stream=out).warning(msg, **fields)
    return out.getvalue()


def test_a_text_line_names_the_variable_once():
    assert _line("text", "DB: using the fallback file", variable="DB") == (
        "secretrun: warning: DB: using the fallback file\n")
    # Another name that merely starts with it is not the same variable.
    assert _line("text", "DB_URL: left unset", variable="DB").endswith("(variable=DB)\n")
    assert _line("text", "could not read the value", variable="API", provider="vault").endswith(
        "(variable=API provider=vault)\n")


def test_json_keeps_every_field():
    record = json.loads(_line("json", "DB: using the fallback file", variable="DB"))
    assert record["variable"] == "DB"


@pytest.mark.parametrize("error, words", [
    (KeyError(CANARY), "an error in the provider's code"),
    (TypeError(CANARY), "an error in the provider's code"),
    (PermissionError(13, "Permission denied", CANARY), "operating system error: Permission denied"),
])
def test_a_provider_bug_is_told_in_words(error, words):
    text = str(provider_bug("plugin", error))
    assert text.startswith(f"provider 'plugin' failed unexpectedly ({words}")
    assert type(error).__name__ not in text
    assert_no_canary(text)


def test_aws_sdk_failures_are_told_in_words():
    botocore = pytest.importorskip("botocore.exceptions")
    from secretrun.providers.aws_common import translate

    cases = [
        (botocore.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), "timed out"),
        (botocore.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), "timed out"),
        (botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "could not connect"),
        (botocore.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), "connection was closed"),
        (botocore.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
         "only part of them is set"),
        (botocore.SSOTokenLoadError(error_msg="expired"), "aws sso login"),
        (botocore.InvalidConfigError(error_msg="bad"), "a config file cannot be parsed"),
        (botocore.DataNotFoundError(data_path="x"), "the AWS SDK failed unexpectedly"),
    ]
    for exc, words in cases:
        text = str(translate(exc, "${aws:db}", "AWS Secrets Manager"))
        assert words in text, text
        assert type(exc).__name__ not in text and "Error" not in text, text


@pytest.mark.parametrize("error,words", [
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not valid UTF-8"),
    (FileNotFoundError(2, "No such file or directory"), "No such file or directory"),
    (ConnectionResetError(104, "Connection reset by peer"), "the connection failed"),
    (TimeoutError(), "timed out"),
    (ValueError(CANARY), "malformed content"),
    (KeyError(CANARY), "an unexpected error"),
])
def test_an_error_is_said_in_words_never_by_its_class_or_message(error, words):
    from secretrun.errors import in_words

    said = in_words(error)
    assert said == words and type(error).__name__ not in said
    assert_no_canary(said)
