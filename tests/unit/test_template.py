import pytest

from secretrun.template import Literal, Ref, TemplateError, parse, single_ref


@pytest.mark.parametrize("text, expected", [
    ("plain", (Literal("plain"),)),
    ("", ()),
    ("${vault:secret/app/db#url}", (Ref("vault", "secret/app/db", None, "url"),)),
    ("${aws:prod/jwt?version=AWSPREVIOUS}", (Ref("aws", "prod/jwt", "AWSPREVIOUS", None),)),
    ("${gcp:key?version=3#a.b}", (Ref("gcp", "key", "3", "a.b"),)),
    ("redis://:${aws:prod/redis#password}@redis:6379/0",
     (Literal("redis://:"), Ref("aws", "prod/redis", None, "password"), Literal("@redis:6379/0"))),
    ("cost $$5 and $HOME", (Literal("cost $5 and $HOME"),)),
    ("$${not:a-ref}", (Literal("${not:a-ref}"),)),
    ("${aws:arn:aws:secretsmanager:eu-west-1:123:secret:db-AbCdEf}",
     (Ref("aws", "arn:aws:secretsmanager:eu-west-1:123:secret:db-AbCdEf"),)),
    ("${a:x}${b:y}", (Ref("a", "x"), Ref("b", "y"))),
    ("trailing $", (Literal("trailing $"),)),
])
def test_parse(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text, message", [
    ("${vault:secret", "not closed"),
    ("${:path}", "empty provider"),
    ("${vault:}", "empty path"),
    ("${vault}", "no ':'"),
    ("${va lt:x}", "may only hold"),
    ("${v:x#}", "empty field"),
    ("${v:x#a..b}", "empty field"),
    ("${v:x?v=1}", "only '?version=V'"),
    ("${v:x?version=}", "empty version"),
    ("a ${v:${w:x}}", "nested"),
])
def test_malformed_templates_are_errors_as_data(text, message):
    result = parse(text)
    assert isinstance(result, TemplateError)
    assert message in result.message


def test_column_points_at_the_reference():
    assert parse("abc ${x").column == 5


def test_ref_text_round_trips():
    for text in ("${v:p}", "${v:p?version=2}", "${v:p#f.g}", "${v:p?version=2#f}"):
        assert single_ref(parse(text)).text == text


def test_fields_of_one_secret_share_a_secret_id():
    a, b = parse("${v:db#user}")[0], parse("${v:db#password}")[0]
    assert a.secret_id == b.secret_id
    assert parse("${v:db?version=2#user}")[0].secret_id != a.secret_id
