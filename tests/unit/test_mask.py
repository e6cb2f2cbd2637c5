"""mask_output: the streaming masker, in process (the pseudo-terminal end to end
is tests/process/test_mask_tty.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from secretrun.mask import MASK, Masker, mask_text
from tests.conftest import CANARY, assert_no_canary


def stream(masker, chunks):
    return b"".join(masker.feed(c) for c in chunks) + masker.release()


def test_whole_values_are_masked():
    assert mask_text(f"db={CANARY};", [CANARY]) == "db=*****;"


def test_a_value_split_across_reads_is_masked():
    m = Masker([CANARY])
    data = f"x {CANARY} y".encode()
    for cut in range(len(data) + 1):
        assert stream(Masker([CANARY]), [data[:cut], data[cut:]]) == b"x ***** y"
    assert stream(m, [bytes([b]) for b in data]) == b"x ***** y"


def test_the_longest_value_wins_and_a_prefix_value_is_still_caught():
    m = Masker(["abcd", "abcdef"])
    assert stream(m, [b"1 abc", b"de", b"f 2 abcd", b"q"]) == b"1 ***** 2 *****q"


def test_short_values_are_not_masked():
    assert mask_text("port 443 is on", ["443", "on"]) == "port 443 is on"


def test_a_multiline_value_is_masked_after_a_terminal_turned_newlines_into_crlf():
    value = "-----BEGIN KEY-----\nAAAA\n-----END KEY-----"
    out = mask_text("k:\r\n" + value.replace("\n", "\r\n") + "\r\n", [value])
    assert out == "k:\r\n*****\r\n"


def test_held_bytes_are_released_short_as_is_and_long_masked():
    m = Masker([CANARY])
    assert m.feed(b"frame\x1b[0m" + CANARY[:2].encode()) == b"frame\x1b[0m"
    assert m.holding and m.release() == CANARY[:2].encode()
    assert m.feed(CANARY[:10].encode()) == b""
    assert m.release() == MASK


def test_values_added_later_are_masked_and_old_ones_stay():
    m = Masker(["first-secret"])
    m.update(["second-secret"])
    assert stream(m, [b"first-secret second-secret"]) == b"***** *****"


def test_bytes_that_are_not_utf8_pass_through():
    assert stream(Masker([CANARY]), [b"\xff\xfe" + CANARY.encode() + b"\x80"]) == b"\xff\xfe*****\x80"


values = st.lists(st.text(alphabet="abc-", min_size=4, max_size=12), min_size=1, max_size=4)


@hsettings(max_examples=300, deadline=None)
@given(values=values, filler=st.lists(st.text(alphabet="abc-xy \n", max_size=10), min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_no_value_survives_any_split(values, filler, cuts):
    pieces = []
    for i, f in enumerate(filler):
        pieces += [f, values[i % len(values)]]
    data = "".join(pieces).encode()
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    out = stream(Masker(values), chunks)
    for v in values:
        assert v.encode() not in out
    # the same result however the stream was cut
    assert out == stream(Masker(values), [data])


# --- hostile output: pauses, overlaps, encodings, scale (issue 13) --------------------------------


def trickle(masker, data: bytes, step: int):
    """``data`` written ``step`` bytes at a time with a quiet period (a
    release) after each write, as a slow writer would be relayed."""
    out = b""
    for i in range(0, len(data), step):
        out += masker.feed(data[i:i + step]) + masker.release()
    return out


def test_a_value_written_with_a_pause_is_masked_whole():
    value = "0123456789abcdefghijklmnopqrstuv"        # 32 characters
    m = Masker([value])
    out = m.feed(value[:10].encode()) + m.release()          # the pause: held bytes go out
    out += m.feed(value[10:].encode() + b" done") + m.release()
    assert out == b"***** done"


@pytest.mark.parametrize("step", [1, 3, 5, 11])
def test_a_value_trickled_a_few_bytes_per_pause_never_shows(step):
    m = Masker([CANARY])
    out = trickle(m, f"token={CANARY}; next".encode(), step)
    assert_no_canary(out)
    for i in range(len(CANARY) - 4):
        assert CANARY[i:i + 5].encode() not in out, out
    assert out.endswith(b"; next") and out.startswith(b"token=")


@hsettings(max_examples=300, deadline=None)
@given(values=values, filler=st.lists(st.text(alphabet="abc-xy \n", max_size=10), min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
       pauses=st.lists(st.booleans(), min_size=8, max_size=8))
def test_no_value_survives_any_split_with_pauses(values, filler, cuts, pauses):
    pieces = []
    for i, f in enumerate(filler):
        pieces += [f, values[i % len(values)]]
    data = "".join(pieces).encode()
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    m, out = Masker(values), b""
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        out += m.feed(data[a:b])
        if pauses[i % len(pauses)]:
            out += m.release()           # the quiet period passed
    out += m.release()
    for v in values:
        assert v.encode() not in out


def test_overlapping_values_are_masked_as_their_union():
    a, b = "alpha-secret-1234", "1234-beta-secret"
    out = mask_text("x alpha-secret-1234-beta-secret y", [a, b])
    assert out == "x ***** y"


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc"])
def test_base64_of_a_value_is_masked_at_every_alignment(prefix):
    import base64

    encoded = base64.b64encode(prefix + CANARY.encode() + b"!?").decode()
    out = mask_text(f"Authorization: Basic {encoded}", [CANARY])
    assert "*****" in out
    for i in range(0, len(encoded) - 8):
        # what is left in clear is at most the few characters of the edges
        assert encoded[i:i + 8] not in out or i < 4 or i > len(encoded) - 12, out


def test_url_and_json_encodings_are_masked():
    import json
    from urllib.parse import quote

    value = 'p@ss/"word"\\n=é' + CANARY
    out = mask_text(f"url=https://h/?pw={quote(value, safe='')} log={json.dumps({'pw': value})}", [value])
    assert out == "url=https://h/?pw=***** log={\"pw\": \"*****\"}", out


def test_a_large_value_is_masked_whole_and_when_split_anywhere():
    import os as _os

    big = _os.urandom(150_000).hex()                                  # 300 kB
    m = Masker([big])
    data = b"before " + big.encode() + b" after"
    assert stream(m, [data]) == b"before ***** after"
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    assert stream(Masker([big]), chunks) == b"before ***** after"
    out = trickle(Masker([big]), data, 40_000)
    assert big[1000:1100].encode() not in out and out.startswith(b"before ") and out.endswith(b" after")


def test_ten_thousand_values_are_all_found():
    values = [f"value-{i:05d}-{CANARY}" for i in range(10_000)]
    text = " | ".join(values[::997])
    assert mask_text(text, values) == " | ".join(["*****"] * len(values[::997]))


def test_old_generations_are_forgotten_and_current_values_stay():
    from secretrun.redact import GENERATIONS, Secrets

    secrets = Secrets()
    for i in range(GENERATIONS + 2):
        secrets.deliver([f"rotated-value-{i}", "steady-value"])
    text = " ".join(f"rotated-value-{i}" for i in range(GENERATIONS + 2)) + " steady-value"
    masked = secrets(text)
    assert "rotated-value-0" in masked and "steady-value" not in masked
    assert f"rotated-value-{GENERATIONS + 1}" not in masked
