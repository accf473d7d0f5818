"""The Invoke retry policy, with a scripted client and no real waiting."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from estimator.clock import ManualClock
from siblings import SpawnFailed
from siblings.invoke import PERMANENT_CAUSES, Invoker, is_retryable

ARN = "arn:aws:lambda:us-east-1:123456789012:function:worker:prod"


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Invoke",
    )


class ScriptedLambda:
    """Raises the scripted errors in order, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        return {
            "StatusCode": 202,
            "ResponseMetadata": {"RequestId": "req-42", "HTTPStatusCode": 202},
        }


class RecordingClock(ManualClock):
    """A manual clock that also lists each sleep."""

    def __init__(self, sleeps: list[float]) -> None:
        super().__init__()
        self.sleeps = sleeps

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


def invoker(client: ScriptedLambda, sleeps: list[float], **kwargs: Any) -> Invoker:
    return Invoker(client, clock=RecordingClock(sleeps), rng=random.Random(1), **kwargs)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (client_error("TooManyRequestsException", 429), True),
        (client_error("ServiceException", 500), True),
        (client_error("EC2ThrottledException", 502), True),
        (client_error("SomethingNew", 503), True),
        (client_error("ResourceNotFoundException", 404), False),
        (client_error("AccessDeniedException", 403), False),
        (client_error("RequestTooLargeException", 413), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
    ],
)
def test_what_is_retried(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


def test_success_after_throttling_sends_the_same_event_each_time() -> None:
    client = ScriptedLambda(
        client_error("TooManyRequestsException", 429), client_error("ServiceException", 500)
    )
    sleeps: list[float] = []
    outcome = invoker(client, sleeps).invoke(ARN, b'{"a":1}')
    assert (outcome.request_id, outcome.status_code, outcome.attempts) == ("req-42", 202, 3)
    assert len(client.calls) == 3 and len(sleeps) == 2
    assert all(
        call == {"FunctionName": ARN, "InvocationType": "Event", "Payload": b'{"a":1}'}
        for call in client.calls
    )


def test_backoff_is_bounded_full_jitter() -> None:
    client = ScriptedLambda(*[client_error("TooManyRequestsException", 429)] * 10)
    sleeps: list[float] = []
    with pytest.raises(SpawnFailed):
        invoker(
            client, sleeps, max_attempts=8, backoff_seconds=0.1, max_backoff_seconds=0.4
        ).invoke(ARN, b"{}")
    caps = [min(0.4, 0.1 * 2**i) for i in range(7)]
    assert len(sleeps) == 7
    assert all(0 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))


def test_exhausted_retries_raise_spawn_failed_with_the_cause() -> None:
    last = client_error("TooManyRequestsException", 429)
    server_error = client_error("ServiceException", 500)
    client = ScriptedLambda(server_error, server_error, last)
    with pytest.raises(SpawnFailed) as caught:
        invoker(client, [], max_attempts=3).invoke(ARN, b"{}")
    assert caught.value.cause is last and caught.value.attempts == 3
    assert caught.value.function_name == "worker"
    assert caught.value.__cause__ is last


def test_permanent_errors_fail_at_once() -> None:
    client = ScriptedLambda(client_error("ResourceNotFoundException", 404))
    sleeps: list[float] = []
    with pytest.raises(SpawnFailed) as caught:
        invoker(client, sleeps).invoke(ARN, b"{}")
    assert caught.value.attempts == 1 and sleeps == []


def test_retries_stop_at_the_deadline() -> None:
    client = ScriptedLambda(*[client_error("TooManyRequestsException", 429)] * 5)
    sleeps: list[float] = []
    clock = RecordingClock(sleeps)
    retrying = Invoker(
        client, clock=clock, rng=random.Random(1), backoff_seconds=10.0, max_backoff_seconds=10.0
    )
    with pytest.raises(SpawnFailed) as caught:
        retrying.invoke(ARN, b"{}", deadline=clock.monotonic())
    assert caught.value.attempts == 1 and sleeps == []


def test_dry_run_and_bad_invocation_type() -> None:
    client = ScriptedLambda()
    invoker(client, []).invoke(ARN, b"{}", invocation_type="DryRun")
    assert client.calls[0]["InvocationType"] == "DryRun"
    with pytest.raises(ValueError, match="invocation_type"):
        invoker(client, []).invoke(ARN, b"{}", invocation_type="RequestResponse")


def _invoke_errors() -> dict[str, int]:
    """Every error botocore's Lambda model lists for Invoke, with its HTTP status."""
    model = botocore.session.get_session().get_service_model("lambda")
    operation = model.operation_model("Invoke")
    return {shape.name: int(shape.metadata["error"]["httpStatusCode"]) for shape in operation.error_shapes}


@pytest.mark.parametrize(
    "code",
    [
        "KMSAccessDeniedException",
        "InvalidZipFileException",
        "InvalidRuntimeException",
        "SubnetIPAddressLimitReachedException",
        "EC2AccessDeniedException",
        "ENILimitReachedException",
    ],
)
def test_permanent_5xx_errors_fail_at_once_naming_the_cause(code: str) -> None:
    status = _invoke_errors()[code]
    assert status == 502  # a 5xx: retried before, although no retry can cure it
    client = ScriptedLambda(client_error(code, status), client_error(code, status))
    sleeps: list[float] = []
    with pytest.raises(SpawnFailed) as caught:
        invoker(client, sleeps).invoke(ARN, b"{}")
    assert caught.value.attempts == 1 and sleeps == []
    assert code in str(caught.value) and "permanent" in str(caught.value)
    assert PERMANENT_CAUSES[code] in str(caught.value) and caught.value.hint


@pytest.mark.parametrize(
    "code",
    [
        "ResourceConflictException",
        "SnapStartNotReadyException",
        "CodeArtifactUserPendingException",
        "ResourceNotReadyException",
        "ENINotReadyException",
        "EC2ThrottledException",
    ],
)
def test_wait_and_retry_errors_are_retried(code: str) -> None:
    status = _invoke_errors()[code]
    client = ScriptedLambda(client_error(code, status), client_error(code, status))
    sleeps: list[float] = []
    outcome = invoker(client, sleeps).invoke(ARN, b"{}")
    assert outcome.attempts == 3 and len(sleeps) == 2


def test_recursive_invocation_is_not_retried_and_names_the_fix() -> None:
    client = ScriptedLambda(client_error("RecursiveInvocationException", 400))
    with pytest.raises(SpawnFailed) as caught:
        invoker(client, []).invoke(ARN, b"{}")
    assert caught.value.attempts == 1 and "RecursiveLoop: Allow" in str(caught.value)


def test_every_invoke_error_of_the_model_has_a_row_in_the_docs_table() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "spawn-siblings.md").read_text()
    section = page[page.index("## Invoke errors") :]
    missing = [code for code in _invoke_errors() if f"`{code}`" not in section]
    assert missing == []
    for code in PERMANENT_CAUSES:  # the table's "fails at once" rows are what the code does
        assert is_retryable(client_error(code, _invoke_errors()[code])) is False
