"""Create the AWS resources a local fleet needs on the moto server (role, function, rule...)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def placeholder_zip() -> bytes:
    """A deployment package moto accepts; the local runtime runs the registered handler instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


def create_function(
    lambda_client: Any,
    iam_client: Any,
    name: str,
    *,
    timeout_seconds: int = 3,
    memory_mb: int = 128,
    environment: dict[str, str] | None = None,
    recursive_loop: str | None = "Allow",
) -> str:
    """Create ``name`` (and its execution role, which moto requires to exist); return its ARN.

    ``timeout_seconds`` is the function's ``Timeout`` (Lambda's minimum is 1 s); the local
    runtime uses it as the deadline unless its registration overrides it. ``recursive_loop``
    is put with ``PutFunctionRecursionConfig`` as ``template.yaml`` deploys it (``Allow``);
    ``None`` leaves Lambda's default, ``Terminate``.
    """
    role_name = f"{name}-role"[:64]
    try:
        role_arn = iam_client.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam_client.exceptions.NoSuchEntityException:
        role_arn = iam_client.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY)
        )["Role"]["Arn"]
    response = lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role_arn,
        Handler="placeholder.handler",
        Code={"ZipFile": placeholder_zip()},
        Timeout=max(1, int(timeout_seconds)),
        MemorySize=memory_mb,
        Environment={"Variables": dict(environment or {})},
    )
    arn: str = response["FunctionArn"]
    if recursive_loop is not None:
        lambda_client.put_function_recursion_config(FunctionName=name, RecursiveLoop=recursive_loop)
    return arn


def create_schedule_rule(
    events_client: Any, rule_name: str, function_arn: str, schedule: str = "rate(1 minute)"
) -> str:
    """Create an ENABLED scheduled EventBridge rule that targets the function; return its ARN.

    This is the rule sosw-style guards look for: while it is enabled, siblings may spawn.
    """
    rule_arn: str = events_client.put_rule(
        Name=rule_name, ScheduleExpression=schedule, State="ENABLED"
    )["RuleArn"]
    events_client.put_targets(Rule=rule_name, Targets=[{"Id": "worker", "Arn": function_arn}])
    return rule_arn
