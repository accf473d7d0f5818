"""Reading the Lambda context: what is kept, what is refused."""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest

from siblings.context import read_context

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:worker"


def test_unqualified_arn() -> None:
    info = read_context(SimpleNamespace(invoked_function_arn=ARN, aws_request_id="r-1"))
    assert (info.function_name, info.qualifier, info.region, info.account) == (
        "worker",
        None,
        "eu-west-1",
        "123456789012",
    )
    assert info.function_arn == info.unqualified_arn == ARN
    assert info.request_id == "r-1"
    assert info.remaining_ms is None


@pytest.mark.parametrize("qualifier", ["prod", "7", "$LATEST"])
def test_alias_or_version_is_kept(qualifier: str) -> None:
    info = read_context(
        SimpleNamespace(
            invoked_function_arn=f"{ARN}:{qualifier}", get_remaining_time_in_millis=lambda: 5
        )
    )
    assert info.function_arn == f"{ARN}:{qualifier}"
    assert info.unqualified_arn == ARN
    assert info.qualifier == qualifier
    assert info.request_id is None
    assert info.remaining_ms is not None and info.remaining_ms() == 5


def test_other_partitions() -> None:
    arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:worker"
    assert read_context(SimpleNamespace(invoked_function_arn=arn)).unqualified_arn == arn


@pytest.mark.parametrize(
    ("context", "error", "match"),
    [
        (None, TypeError, "required"),
        ({"invoked_function_arn": ARN}, TypeError, "no invoked_function_arn"),
        (SimpleNamespace(invoked_function_arn=None), TypeError, "no invoked_function_arn"),
        (SimpleNamespace(invoked_function_arn=42), TypeError, "must be a str"),
        (SimpleNamespace(invoked_function_arn="worker"), ValueError, "not a Lambda function ARN"),
        (
            SimpleNamespace(invoked_function_arn="arn:aws:s3:::bucket/key"),
            ValueError,
            "not a Lambda function ARN",
        ),
        (
            SimpleNamespace(invoked_function_arn=ARN.replace("worker", "bad name")),
            ValueError,
            "invalid",
        ),
        (SimpleNamespace(invoked_function_arn=f"{ARN}:bad!q"), ValueError, "invalid"),
        (SimpleNamespace(invoked_function_arn=ARN, aws_request_id=7), TypeError, "aws_request_id"),
        (SimpleNamespace(invoked_function_arn=ARN, aws_request_id=""), TypeError, "aws_request_id"),
    ],
)
def test_malformed_contexts(context: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        read_context(context)


def test_what_a_mock_made_up_counts_as_absent() -> None:
    # sosw-era handler tests pass MagicMock() contexts with only the ARN set.
    context = MagicMock()
    context.invoked_function_arn = ARN
    info = read_context(context)
    assert (info.function_name, info.request_id, info.remaining_ms) == ("worker", None, None)
    with pytest.raises(TypeError, match="test double must set it"):
        read_context(MagicMock())


def test_a_class_with_only_the_arn_is_a_context() -> None:
    info = read_context(type("lambda_context", (object,), {"invoked_function_arn": ARN}))
    assert (info.function_arn, info.request_id, info.remaining_ms) == (ARN, None, None)
