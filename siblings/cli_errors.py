"""What went wrong in the user's AWS environment, told in one line with a distinct exit code.

Every library error caused by AWS carries its classified ``failure``
(:func:`estimator.failures.classify`, done once where the library caught it); a bare SDK error
is classified here the same way. :func:`diagnose` maps that one value to the problem it names:
no Region, no credentials, rejected credentials, access denied, no table, no endpoint.
Anything else is not an environment problem and is left to the caller.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TextIO

from botocore.exceptions import ClientError, NoCredentialsError

from estimator.config import Config
from estimator.failures import AwsFailure, FailureKind, classify
from siblings.iam import iam_action

USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130
BROKEN_PIPE_EXIT_CODE = 141
"""The output was closed early (``siblings ... | head``): 128 + SIGPIPE, as a shell reports it."""


class Problem(Enum):
    """A problem of the user's AWS environment: its exit code, a summary for ``--help``, and a
    one-line message with what to set (``{...}`` fields are filled by :meth:`Diagnosis.message`).
    """

    NO_REGION = (
        3,
        "no AWS Region configured",
        "no AWS Region: pass --region or set AWS_DEFAULT_REGION (or SIBLINGS_REGION_NAME)",
    )
    NO_CREDENTIALS = (
        4,
        "no AWS credentials found",
        "no AWS credentials{detail}: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    )
    NO_TABLE = (
        5,
        "the shared table does not exist (in that Region)",
        "table {table!r} not found{where}: run `siblings create-table` "
        "or pass --table-name / SIBLINGS_TABLE_NAME",
    )
    ACCESS_DENIED = (
        6,
        "access denied by IAM",
        "access denied to {action}{resource}: allow it in the IAM policy of your credentials' "
        "identity, or use other credentials (AWS_PROFILE)",
    )
    CREDENTIALS_REJECTED = (
        7,
        "credentials rejected by AWS (invalid or expired)",
        "AWS rejected the credentials ({detail}): check AWS_PROFILE / AWS_ACCESS_KEY_ID, "
        "or renew them if they expired (e.g. `aws sso login`)",
    )
    ENDPOINT_UNREACHABLE = (
        8,
        "AWS endpoint unreachable",
        "cannot reach {endpoint} ({detail}): check --endpoint-url / SIBLINGS_ENDPOINT_URL "
        "or your network",
    )

    def __init__(self, exit_code: int, summary: str, template: str) -> None:
        self.exit_code = exit_code
        self.summary = summary
        self.template = template


# AWS names the denied action and resource in its message; e.g. "... is not authorized to
# perform: dynamodb:GetItem on resource: arn:aws:dynamodb:...:table/x because ...".
_DENIED_ACTION = re.compile(r"perform: ([\w-]+:\w+)(?: on resource: (\S+))?")


def exit_status_help() -> str:
    """The ``exit status`` list of ``siblings --help``."""
    rows = [
        ("0", "success"),
        (str(USAGE_EXIT_CODE), "bad usage or input; also other failures the library reports"),
        *((str(p.exit_code), p.summary) for p in Problem),
        (str(INTERRUPTED_EXIT_CODE), "interrupted (Ctrl-C)"),
        (str(BROKEN_PIPE_EXIT_CODE), "the output was closed early (a pipe into head...)"),
    ]
    return "exit status:\n" + "\n".join(f"  {code:<4} {text}" for code, text in rows)


@dataclass(frozen=True)
class Diagnosis:
    """A :class:`Problem`, the error in the chain that shows it, and what the caller knew."""

    problem: Problem
    error: BaseException
    service: str | None = None
    """SigV4 name of the service that failed (``dynamodb``, ``monitoring``) when known."""
    config: Config | None = None

    @property
    def exit_code(self) -> int:
        """The exit code of :attr:`problem`."""
        return self.problem.exit_code

    def message(self) -> str:
        """The one-line message: what is wrong and what to set."""
        fields = {"detail": "", "table": "", "where": "", "action": "", "resource": "", "endpoint": ""}
        fields.update(_FIELDS[self.problem](self))
        return " ".join(self.problem.template.format(**fields).split())


def diagnose(error: BaseException, config: Config | None = None) -> Diagnosis | None:
    """The environment problem behind ``error``, or ``None`` when it is something else.

    ``config`` (the command's settings) names the table and endpoint in the message.
    """
    failure = classify(error)
    problem = _problem(failure)
    if problem is None:
        return None
    return Diagnosis(problem, failure.error, failure.service, config)


def report(
    error: BaseException,
    command: str,
    config: Config | None = None,
    *,
    verbose: bool = False,
    stream: TextIO | None = None,
) -> int | None:
    """Print ``error``'s environment problem to stderr and return its exit code.

    One line, or with ``verbose`` one more for the error caught and one for the AWS error
    behind it. Returns ``None`` (printing nothing) when ``error`` is not an environment problem.
    """
    diagnosis = diagnose(error, config)
    if diagnosis is None:
        return None
    out = stream or sys.stderr
    print(f"siblings {command}: error: {diagnosis.message()}", file=out)
    if verbose:
        shown = [error] if diagnosis.error is error else [error, diagnosis.error]
        for link in shown:
            text = " ".join(str(link).split())
            print(f"  - {type(link).__module__}.{type(link).__name__}: {text}", file=out)
    return diagnosis.exit_code


_PROBLEM_OF = {
    FailureKind.NO_REGION: Problem.NO_REGION,
    FailureKind.NO_CREDENTIALS: Problem.NO_CREDENTIALS,
    FailureKind.CREDENTIALS_REJECTED: Problem.CREDENTIALS_REJECTED,
    FailureKind.UNREACHABLE: Problem.ENDPOINT_UNREACHABLE,
    FailureKind.CONNECTION_FAILED: Problem.ENDPOINT_UNREACHABLE,  # TLS, a proxy: still the endpoint
    FailureKind.ACCESS_DENIED: Problem.ACCESS_DENIED,
}


def _problem(failure: AwsFailure) -> Problem | None:
    # Only DynamoDB's "not found" means the table: other services use the code too.
    if failure.kind is FailureKind.NOT_FOUND:
        return Problem.NO_TABLE if failure.service == "dynamodb" else None
    return _PROBLEM_OF.get(failure.kind)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _no_credentials_fields(diagnosis: Diagnosis) -> dict[str, str]:
    # "Unable to locate credentials" adds nothing; the other errors say which part is missing.
    if isinstance(diagnosis.error, NoCredentialsError):
        return {}
    return {"detail": f" ({_one_line(diagnosis.error)})"}


def _rejected_fields(diagnosis: Diagnosis) -> dict[str, str]:
    error = diagnosis.error
    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message", "")
        return {"detail": f"{_code(error)}: {message}".rstrip(": ")}
    return {"detail": f"{type(error).__name__}: {_one_line(error)}"}


def _denied_fields(diagnosis: Diagnosis) -> dict[str, str]:
    error = diagnosis.error
    assert isinstance(error, ClientError)
    message = str(error.response.get("Error", {}).get("Message", ""))
    named = _DENIED_ACTION.search(message)
    if named:
        resource = f" on {named.group(2)}" if named.group(2) else ""
        return {"action": named.group(1), "resource": resource}
    operation = error.operation_name or "an AWS operation"
    if diagnosis.service and error.operation_name:
        return {"action": iam_action(diagnosis.service, operation)}
    return {"action": operation}


def _table_fields(diagnosis: Diagnosis) -> dict[str, str]:
    config = diagnosis.config or Config()
    region = _region(config)
    where = f" in {region}" if region else ""
    if config.endpoint_url:
        where += f" at {config.endpoint_url}"
    return {"table": config.table_name, "where": where}


def _endpoint_fields(diagnosis: Diagnosis) -> dict[str, str]:
    error = diagnosis.error
    kwargs: dict[str, Any] = getattr(error, "kwargs", {}) or {}
    endpoint = kwargs.get("endpoint_url") or (diagnosis.config and diagnosis.config.endpoint_url)
    return {"endpoint": str(endpoint or "the AWS endpoint"), "detail": type(error).__name__}


def _region(config: Config) -> str | None:
    """The Region the command used: its own setting, else boto3's default resolution."""
    if config.region_name:
        return config.region_name
    try:
        import boto3

        return boto3.Session().region_name
    except Exception:  # a broken profile must not hide the message being printed
        return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _no_fields(diagnosis: Diagnosis) -> dict[str, str]:
    return {}


_FIELDS: dict[Problem, Callable[[Diagnosis], dict[str, str]]] = {
    Problem.NO_REGION: _no_fields,
    Problem.NO_CREDENTIALS: _no_credentials_fields,
    Problem.NO_TABLE: _table_fields,
    Problem.ACCESS_DENIED: _denied_fields,
    Problem.CREDENTIALS_REJECTED: _rejected_fields,
    Problem.ENDPOINT_UNREACHABLE: _endpoint_fields,
}


def one_line_failure(error: BaseException, service: str) -> str:
    """An AWS call's failure in one line: ``service:Operation`` failed, HTTP status, error code,
    AWS's message; never an HTML page or a multi-line body (an endpoint that lacks the API, such
    as plain moto for Lambda's GetAccountSettings, answers with its web server's 404 page)."""
    cause = classify(error).error
    if isinstance(cause, ClientError):
        details = cause.response.get("Error", {})
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(details.get("Code", ""))
        message = str(details.get("Message", "")).strip()
        if message.startswith("<") or "\n" in message:
            message = "the endpoint does not implement it" if status == 404 else "no AWS error given"
        head = f"{service}:{cause.operation_name} failed (HTTP {status}"
        head += f", {code})" if code and code != str(status) else ")"
        return f"{head}: {message}" if message else head
    return str(error).splitlines()[0] if str(error) else type(error).__name__
