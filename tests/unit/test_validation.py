"""Function names, ARNs, qualifiers and minutes_back."""

from __future__ import annotations

import pytest

from estimator.validation import check_minutes_back, parse_function


def test_plain_name() -> None:
    ref = parse_function("my-fn_1")
    assert (ref.name, ref.qualifier, ref.resource) == ("my-fn_1", None, "my-fn_1")


def test_full_arn_with_alias() -> None:
    ref = parse_function("arn:aws:lambda:eu-west-1:123456789012:function:worker:live")
    assert (ref.name, ref.qualifier, ref.region, ref.account) == (
        "worker", "live", "eu-west-1", "123456789012"
    )
    assert ref.resource == "worker:live"
    assert ref.arn() == "arn:aws:lambda:eu-west-1:123456789012:function:worker:live"
    assert ref.unqualified().arn() == "arn:aws:lambda:eu-west-1:123456789012:function:worker"


def test_partial_arn_and_explicit_qualifier() -> None:
    ref = parse_function("123456789012:function:worker", qualifier="$LATEST")
    assert (ref.name, ref.qualifier, ref.account) == ("worker", "$LATEST", "123456789012")


@pytest.mark.parametrize(("text", "qualifier"), [("worker:prod", "prod"), ("worker:$LATEST", "$LATEST")])
def test_name_with_qualifier_is_accepted_as_documented(text: str, qualifier: str) -> None:
    ref = parse_function(text)
    assert (ref.name, ref.qualifier, ref.resource) == ("worker", qualifier, text)
    with pytest.raises(ValueError, match="disagrees"):
        parse_function(text, qualifier="other")


def test_name_with_qualifier() -> None:
    ref = parse_function("worker:live")
    assert (ref.name, ref.qualifier, ref.region, ref.account) == ("worker", "live", None, None)
    assert parse_function("worker:$LATEST", qualifier="$LATEST").resource == "worker:$LATEST"
    with pytest.raises(ValueError, match="disagrees"):
        parse_function("worker:1", qualifier="2")


@pytest.mark.parametrize(
    "name", ["", "a" * 65, "has space", "semi;colon", "arn:aws:lambda:x:1:function:f", "fn:"]
)
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="function_name"):
        parse_function(name)


@pytest.mark.parametrize("value", [None, 5, b"fn", ["fn"]])
def test_name_of_wrong_type(value: object) -> None:
    with pytest.raises(TypeError, match="function_name"):
        parse_function(value)


@pytest.mark.parametrize("qualifier", ["bad qualifier", "v/1", "a" * 129, ""])
def test_bad_qualifier(qualifier: str) -> None:
    with pytest.raises(ValueError, match="qualifier"):
        parse_function("fn", qualifier)


def test_qualifier_of_wrong_type() -> None:
    with pytest.raises(TypeError, match="qualifier"):
        parse_function("fn", 3)


def test_conflicting_qualifiers() -> None:
    with pytest.raises(ValueError, match="disagrees"):
        parse_function("arn:aws:lambda:us-east-1:123456789012:function:fn:1", qualifier="2")


def test_arn_needs_region_and_account() -> None:
    with pytest.raises(ValueError, match="region and account"):
        parse_function("fn").arn()


@pytest.mark.parametrize("value", [1, 5, 1440])
def test_minutes_back_ok(value: int) -> None:
    assert check_minutes_back(value) == value


@pytest.mark.parametrize("value", [0, -1, 1441])
def test_minutes_back_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="minutes_back"):
        check_minutes_back(value)


@pytest.mark.parametrize("value", ["5", 5.0, True, None])
def test_minutes_back_wrong_type(value: object) -> None:
    with pytest.raises(TypeError, match="minutes_back"):
        check_minutes_back(value)
