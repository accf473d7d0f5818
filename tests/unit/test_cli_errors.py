"""Which environment problem an error chain shows, for the errors a test server cannot produce."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    NoRegionError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
    SSOTokenLoadError,
)
from pynamodb.exceptions import GetError, TableDoesNotExist

from estimator.config import Config
from estimator.exceptions import EstimateUnavailable, LookupFailed, StoreUnavailable
from estimator.failures import FailureKind
from siblings.cli_errors import Problem, diagnose


def client_error(code: str, operation: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def in_store(error: Exception, operation: str = "GetItem") -> StoreUnavailable:
    """Wrapped as the library wraps DynamoDB errors: pynamodb's, then its own."""
    wrapped = GetError("Failed to get item", error)
    try:
        raise StoreUnavailable(operation, wrapped) from wrapped
    except StoreUnavailable as caught:
        return caught


def in_estimate(error: Exception) -> EstimateUnavailable:
    return EstimateUnavailable("worker", error)


def test_every_problem_has_its_own_exit_code() -> None:
    codes = [problem.exit_code for problem in Problem]
    assert len(set(codes)) == len(codes) and not {0, 1, 2, 130} & set(codes)


@pytest.mark.parametrize(
    ("error", "problem", "hint"),
    [
        (in_store(NoRegionError()), Problem.NO_REGION, "--region"),
        (ProfileNotFound(profile="ops"), Problem.NO_CREDENTIALS, "(ops)"),
        (in_store(client_error("ExpiredTokenException", "GetItem", "expired")),
         Problem.CREDENTIALS_REJECTED, "ExpiredTokenException: expired"),
        (in_estimate(SSOTokenLoadError(error_msg="sso expired")),
         Problem.CREDENTIALS_REJECTED, "sso expired"),
        (in_estimate(ConnectTimeoutError(endpoint_url="https://monitoring.example")),
         Problem.ENDPOINT_UNREACHABLE, "https://monitoring.example (ConnectTimeoutError)"),
        (in_store(ReadTimeoutError(endpoint_url="http://127.0.0.1:1")),
         Problem.ENDPOINT_UNREACHABLE, "http://127.0.0.1:1"),
        (in_estimate(SSLError(endpoint_url="https://monitoring.example", error=OSError("cert"))),
         Problem.ENDPOINT_UNREACHABLE, "https://monitoring.example (SSLError)"),
        (in_store(TableDoesNotExist("t")), Problem.NO_TABLE, "'lambda-siblings'"),
        (in_store(client_error("ResourceNotFoundException", "PutItem")), Problem.NO_TABLE,
         "siblings create-table"),
    ],
)
def test_chains_are_diagnosed(error: BaseException, problem: Problem, hint: str) -> None:
    diagnosis = diagnose(error, Config(region_name="eu-west-1"))
    assert diagnosis is not None and diagnosis.problem is problem
    assert hint in diagnosis.message() and "\n" not in diagnosis.message()


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (in_store(client_error("AccessDeniedException", "UpdateItem", "no")), "dynamodb:UpdateItem"),
        (in_estimate(client_error("AccessDenied", "GetMetricData")), "cloudwatch:GetMetricData"),
        (client_error("AccessDenied", "ListRules"), "ListRules"),
    ],
)
def test_access_denied_names_the_action_when_aws_does_not(error: BaseException, action: str) -> None:
    diagnosis = diagnose(error)
    assert diagnosis is not None and diagnosis.problem is Problem.ACCESS_DENIED
    assert f"access denied to {action}:" in diagnosis.message()


@pytest.mark.parametrize(
    "error",
    [
        in_estimate(client_error("ResourceNotFoundException", "GetMetricData")),
        in_store(client_error("ThrottlingException", "GetItem")),
        in_estimate(client_error("Throttling", "GetMetricData")),
        LookupFailed("k", None, "timed out waiting for another execution's refresh"),
        ValueError("function_name must be ..."),
    ],
)
def test_other_failures_are_not_environment_problems(error: BaseException) -> None:
    assert diagnose(error) is None


def test_a_failure_is_classified_once_and_handed_on_by_every_wrapper() -> None:
    denied = client_error("AccessDeniedException", "GetItem", "no")
    stored = in_store(denied)
    outer = EstimateUnavailable("worker", LookupFailed("k", stored))
    assert stored.failure is not None and outer.failure is stored.failure
    assert (outer.failure.kind, outer.failure.code, outer.failure.service) == (
        FailureKind.ACCESS_DENIED, "AccessDeniedException", "dynamodb")
    assert outer.failure.error is denied


def test_diagnosis_follows_no_links() -> None:
    inner = NoRegionError()
    outer = LookupFailed("k", None)
    outer.__cause__ = inner  # only ``failure`` counts: a link the library did not classify is not read
    inner.__cause__ = outer
    assert diagnose(outer) is None and diagnose(LookupFailed("k", inner)) is not None
