"""Deploy a SAM template (``template.yaml``) into the embedded server's CloudFormation.

What ``sam deploy`` does, on moto: the SAM transform renders the template to plain
CloudFormation (with aws-sam-translator, as CloudFormation's ``AWS::Serverless`` transform
would), a function's local ``CodeUri`` is replaced by a code zip uploaded to S3, and the stack
is created. moto's CloudFormation ignores a table's ``TimeToLiveSpecification``; it is applied
afterwards, as CloudFormation would have. The code zip is a placeholder: moto does not run
functions (the local runtime runs registered handlers instead).

Needs the ``local`` extra (moto brings cfn-lint, whose YAML loader reads the short intrinsic
tags such as ``!Ref``; aws-sam-translator renders).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from botocore.parsers import ResponseParserError

from siblings.local.errors import StackDeployFailed
from siblings.local.provision import placeholder_zip

DEFAULT_STACK_NAME = "lambda-siblings"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"


def code_bucket_name(stack_name: str) -> str:
    """The bucket holding the stack's function code (what ``sam deploy`` uploads)."""
    return f"{stack_name.lower()}-code"[:63]


def load_template(path: Path) -> dict[str, Any]:
    """A YAML or JSON template as plain dicts, short intrinsic tags decoded (``!Ref x`` ->
    ``{"Ref": "x"}``)."""
    from cfnlint.decode import cfn_yaml

    # Round trip through JSON: cfn-lint's nodes carry line numbers, the translator wants plain types.
    loaded: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return loaded


def render_template(
    source: dict[str, Any],
    *,
    region: str,
    code_bucket: str,
    parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The SAM transform of ``source``: plain CloudFormation.

    A function whose ``CodeUri`` is a local path gets ``s3://<code_bucket>/<LogicalId>.zip``
    instead (the transform needs an S3 location, as ``sam deploy`` makes one);
    :func:`deploy_template` uploads a zip there. ``source`` is not modified. Raises
    :class:`~siblings.local.errors.StackDeployFailed` when the transform rejects the template.
    """
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = copy.deepcopy(source)
    for name in _local_code_functions(template):
        template["Resources"][name]["Properties"]["CodeUri"] = f"s3://{code_bucket}/{name}.zip"
    # The transform reads only the region from the session (for AWS::Region / AWS::Partition).
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    try:
        rendered: dict[str, Any] = translator.translate(
            template, parameter_values=dict(parameters or {}), get_managed_policy_map=lambda: {}
        )
    except InvalidDocumentException as exc:
        raise StackDeployFailed("SAM transform", "INVALID_TEMPLATE", str(exc)) from exc
    return rendered


def deploy_template(
    session: boto3.Session,
    endpoint_url: str,
    template_path: Path,
    parameters: dict[str, str] | None = None,
    stack_name: str = DEFAULT_STACK_NAME,
) -> dict[str, str]:
    """Create ``template_path`` as stack ``stack_name`` on the server at ``endpoint_url``.

    ``parameters`` override the template's parameter defaults. Returns the stack's outputs
    (``OutputKey`` -> ``OutputValue``); raises :class:`~siblings.local.errors.StackDeployFailed`
    when the SAM transform rejects the template or the stack does not reach ``CREATE_COMPLETE``.
    """

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    region = session.region_name or "us-east-1"
    bucket = code_bucket_name(stack_name)
    source = load_template(template_path)
    rendered = render_template(source, region=region, code_bucket=bucket, parameters=parameters)
    functions = _local_code_functions(source)
    if functions:
        s3 = client("s3")
        s3.create_bucket(Bucket=bucket)
        for name in functions:
            s3.put_object(Bucket=bucket, Key=f"{name}.zip", Body=placeholder_zip())

    cloudformation = client("cloudformation")
    # moto's CloudFormation does not model AWS::CloudWatch::Alarm and warns once per template:
    # the alarm is checked statically (tests/integration/test_template.py), so the warning only
    # puzzles a user. The filter is process-wide because moto parses in its server's thread.
    warnings.filterwarnings("ignore", message="Tried to parse AWS::CloudWatch::Alarm", category=UserWarning)
    try:
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(_for_moto(rendered)),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
    # moto answers some broken templates with a 500 (not XML): a parser error.
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        raise StackDeployFailed(stack_name, "CREATE_FAILED", str(exc)[:300]) from exc
    try:
        cloudformation.get_waiter("stack_create_complete").wait(
            StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    except WaiterError as exc:  # it says little: report the stack's own reason
        described = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        raise StackDeployFailed(
            stack_name, described["StackStatus"], described.get("StackStatusReason", "")
        ) from exc
    described = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    _apply_what_moto_ignores(client, cloudformation, stack_name, rendered)
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def _local_code_functions(template: dict[str, Any]) -> list[str]:
    """Serverless functions whose ``CodeUri`` is a local path (not S3 yet)."""
    return [
        name
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == SERVERLESS_FUNCTION
        and isinstance(resource.get("Properties", {}).get("CodeUri"), str)
        and not resource["Properties"]["CodeUri"].startswith("s3://")
    ]


def _for_moto(rendered: dict[str, Any]) -> dict[str, Any]:
    """``rendered`` without the functions' ``RecursiveLoop``, which moto's CloudFormation fails
    on (a 500); :func:`_apply_what_moto_ignores` applies it after the stack is created."""
    copy = json.loads(json.dumps(rendered))
    for resource in copy["Resources"].values():
        if resource.get("Type") == "AWS::Lambda::Function":
            resource.get("Properties", {}).pop("RecursiveLoop", None)
    return copy


def _apply_what_moto_ignores(
    client: Any, cloudformation: Any, stack_name: str, rendered: dict[str, Any]
) -> None:
    """Each table's ``TimeToLiveSpecification`` and each function's ``RecursiveLoop``, applied as
    CloudFormation does (moto drops both)."""
    dynamodb = None
    for name, resource in rendered["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function" and properties.get("RecursiveLoop"):
            function = _physical_id(cloudformation, stack_name, name)
            client("lambda").put_function_recursion_config(
                FunctionName=function, RecursiveLoop=properties["RecursiveLoop"]
            )
            continue
        spec = properties.get("TimeToLiveSpecification")
        if resource["Type"] != "AWS::DynamoDB::Table" or not spec:
            continue
        dynamodb = dynamodb or client("dynamodb")
        table = _physical_id(cloudformation, stack_name, name)
        status = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        # Only when moto left it off: a later moto applying it itself must not be fought.
        if status["TimeToLiveStatus"] == "DISABLED":
            dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=spec)


def _physical_id(cloudformation: Any, stack_name: str, logical_id: str) -> str:
    # ListStackResources, not DescribeStackResource: moto answers the latter with a 500 for a
    # function.
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            if summary["LogicalResourceId"] == logical_id:
                physical: str = summary["PhysicalResourceId"]
                return physical
    raise KeyError(f"stack {stack_name} has no resource {logical_id}")
