"""``template.yaml``: lint-clean, deploys into moto's CloudFormation, and its role allows exactly
what the code calls.

The SAM template is rendered to plain CloudFormation with aws-sam-translator (what
``sam deploy`` has CloudFormation do), then created as a stack on the test moto server, by
:mod:`siblings.local.stack` (what ``siblings simulate --template`` uses too). The
library and the example worker then run against the stack's own table, bucket, rule and
function, with the function's environment; every request they make is checked, action *and*
resource, against the inline policies of the role the stack created.

moto's CloudFormation ignores two properties of the template: ``TimeToLiveSpecification`` of
the table and ``LifecycleConfiguration`` of the bucket. The TTL spec is applied from the
rendered template as CloudFormation would (only when moto left TTL off, by
:func:`~siblings.local.stack.deploy_template`); the lifecycle rule is
checked statically. moto also does not attach ``ManagedPolicyArns`` (SAM's
``AWSLambdaBasicExecutionRole``, CloudWatch Logs for the runtime), which no checked request
needs. moto's CloudFormation skips ``AWS::CloudWatch::Alarm`` (with a warning): the loop alarm is
checked statically, the dashboard both ways.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote

import boto3
import pytest
from botocore.exceptions import ClientError
from cfnlint.api import lint
from cfnlint.config import ManualArgs

import siblings.handler
from estimator import ConcurrencyEstimator, ensure_table
from estimator.store import CacheItem, DynamoStore
from siblings import SiblingsManager, SpawnFailed
from siblings.config import SiblingsConfig
from siblings.context import read_context
from siblings.emf import DIMENSION
from siblings.iam import CREATE_TABLE_ACTIONS, IMPLIED_ACTIONS, RUNTIME_ACTIONS, iam_action
from siblings.local.calls import Call, credential_scope
from siblings.local.server import LOCAL_REGION
from siblings.local.stack import code_bucket_name, deploy_template, load_template, render_template
from siblings.result import DEFERRABLE, REFUSALS
from tests.conftest import Aws
from tests.helpers import minute_clock, put_lambda_metrics

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
WORKER_FILE = REPO / "siblings" / "local" / "workers" / "cursor_worker.py"
STACK = "lambda-siblings-test"
FUNCTION = "CursorWorkerFunction"
LIBRARY_POLICY = "CursorWorkerFunctionRolePolicy0"
WORKER_POLICY = "CursorWorkerFunctionRolePolicy1"
# IAM actions without resource-level permissions: "*" is the only possible Resource.
RESOURCE_STAR_ONLY = {
    "cloudwatch:GetMetricData",
    "events:ListRuleNamesByTarget",
    "lambda:GetAccountSettings",
}
SCHEDULED_EVENT = {
    "version": "0",
    "id": "5c1b6e0e-0000-0000-0000-000000000000",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": LOCAL_REGION,
    "resources": [],
    "detail": {},
}


# --- the template, as written and as CloudFormation gets it ---
@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    """template.yaml, intrinsic tags decoded (``!Ref x`` -> ``{"Ref": "x"}``)."""
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def rendered(source: dict[str, Any]) -> dict[str, Any]:
    """The SAM transform's output, with the function's code in the stack's S3 bucket, as
    :func:`deploy_template` renders it."""
    result = render_template(source, region=LOCAL_REGION, code_bucket=code_bucket_name(STACK))
    code_uri = result["Resources"][FUNCTION]["Properties"]["Code"]
    assert code_uri == {"S3Bucket": code_bucket_name(STACK), "S3Key": f"{FUNCTION}.zip"}
    assert source["Resources"][FUNCTION]["Properties"]["CodeUri"] == "dist/cursor-worker/"
    return result


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for doc in documents for s in _listify(doc["Statement"])]


def _actions(documents: Iterable[dict[str, Any]]) -> set[str]:
    return {a for s in _statements(documents) for a in _listify(s["Action"])}


def _role_policies(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    role = _resources(rendered, "AWS::IAM::Role")[f"{FUNCTION}Role"]  # SAM's role of the function
    return {p["PolicyName"]: p["PolicyDocument"] for p in role["Properties"]["Policies"]}


# --- (a) cfn-lint ---
# Informational checks too. Experimental rules are left out: the only one that fires (I4010)
# asks for documentation metadata blocks, not correctness.
LINT_CONFIG = ManualArgs(include_checks=["I"], regions=["us-east-1", "eu-west-1"])


def _findings(text: str, config: ManualArgs = LINT_CONFIG) -> list[str]:
    return [str(match) for match in lint(text, config=config)]


def test_cfn_lint_passes_on_the_template() -> None:
    assert _findings(TEMPLATE.read_text()) == []


def test_cfn_lint_passes_on_the_rendered_cloudformation(rendered: dict[str, Any]) -> None:
    # The generated role, rule and permission are only linted after the SAM transform.
    assert _findings(json.dumps(rendered), ManualArgs(include_checks=["I"])) == []


def test_cfn_lint_catches_a_broken_template() -> None:
    broken = TEMPLATE.read_text().replace("BillingMode: PAY_PER_REQUEST", "BillingMode: FREE", 1)
    assert any("E3030" in finding for finding in _findings(broken, ManualArgs(regions=["us-east-1"])))


# --- the template matches the library ---
def test_table_has_the_library_schema_and_ttl(source: dict[str, Any]) -> None:
    table = source["Resources"]["SiblingsTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": CacheItem.pk.attr_name, "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": CacheItem.ttl.attr_name, "Enabled": True}


def test_payload_prefix_lifecycle_and_environment_agree(source: dict[str, Any]) -> None:
    parameters = source["Parameters"]
    assert parameters["PayloadPrefix"]["Default"] == SiblingsConfig().payload_prefix
    assert parameters["SiblingsTableName"]["Default"] == SiblingsConfig().table_name
    (rule,) = source["Resources"]["PayloadBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Prefix"] == {"Ref": "PayloadPrefix"}
    assert rule["ExpirationInDays"] == {"Ref": "PayloadRetentionDays"}
    # Lambda retries an async event for up to 6 hours: a payload must outlive that.
    assert parameters["PayloadRetentionDays"]["MinValue"] >= 1

    function = source["Resources"][FUNCTION]["Properties"]
    variables = function["Environment"]["Variables"]
    fields = set(SiblingsConfig.__dataclass_fields__)
    library_vars = {name for name in variables if name.startswith("SIBLINGS_")}
    assert {name.removeprefix("SIBLINGS_").lower() for name in library_vars} <= fields
    assert variables["SIBLINGS_TABLE_NAME"] == {"Ref": "SiblingsTable"}
    assert variables["SIBLINGS_PAYLOAD_BUCKET"] == {"Ref": "PayloadBucket"}
    assert variables["SIBLINGS_PAYLOAD_PREFIX"] == {"Ref": "PayloadPrefix"}
    assert "SIBLINGS_MAX_CONCURRENCY" in variables


def _dashboard(source: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body with its ``${...}`` references filled in as CloudFormation would."""
    body = source["Resources"]["SiblingsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    defaults = {name: str(p.get("Default")) for name, p in source["Parameters"].items()}
    filled = re.sub(r"\$\{([^}]+)\}", lambda m: defaults.get(m.group(1), "us-east-1"), body)
    decoded: dict[str, Any] = json.loads(filled)
    return decoded


def test_dashboard_and_alarm_chart_what_the_library_emits(source: dict[str, Any]) -> None:
    parameters = source["Parameters"]
    assert parameters["MetricsNamespace"]["Default"] == SiblingsConfig().metrics_namespace
    assert parameters["ConcurrencySignal"]["AllowedValues"] == [
        s.value for s in type(SiblingsConfig().concurrency_signal)
    ]
    widgets = {w["properties"]["title"]: w["properties"] for w in _dashboard(source)["widgets"]}
    spawns = widgets["Spawns and refusals by reason"]["metrics"]
    names = {row[1] for row in spawns}
    assert names == {"spawned", "duplicate", "failed", "deferred"} | {f"refused_{r}" for r in REFUSALS}
    assert {(row[0], row[2]) for row in spawns} == {("LambdaSiblings", DIMENSION)}
    capacity = widgets["Capacity: deferred beside refused"]["metrics"]
    kinds = ("deferred", "refused")
    assert {row[1] for row in capacity} == {f"{kind}_{r}" for r in DEFERRABLE for kind in kinds}
    assert {(row[0], row[2]) for row in capacity} == {("LambdaSiblings", DIMENSION)}
    concurrency = widgets["Concurrency: Little's law estimate vs observed peak"]["metrics"]
    assert concurrency[-1][:3] == ["AWS/Lambda", "ConcurrentExecutions", "FunctionName"]
    assert concurrency[-1][-1]["stat"] == "Maximum"
    headroom = widgets["Account headroom (limit - account concurrency)"]["metrics"]
    assert headroom[0][:2] == ["AWS/Lambda", "ConcurrentExecutions"]  # no dimension: the account
    assert headroom[0][2]["stat"] == "Maximum"

    alarm = source["Resources"]["RunawayLoopAlarm"]["Properties"]
    assert alarm["MetricName"] == "refused_max_generations"
    assert alarm["Namespace"] == {"Ref": "MetricsNamespace"}
    assert alarm["Dimensions"] == [{"Name": DIMENSION, "Value": {"Ref": "FunctionName"}}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    variables = source["Resources"][FUNCTION]["Properties"]["Environment"]["Variables"]
    assert variables["SIBLINGS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert variables["SIBLINGS_MIN_ACCOUNT_HEADROOM"] == {"Ref": "MinAccountHeadroom"}


def test_handler_is_the_example_worker(source: dict[str, Any]) -> None:
    function = source["Resources"][FUNCTION]["Properties"]
    module_name, attribute = function["Handler"].rsplit(".", 1)
    assert WORKER_FILE.name == f"{module_name}.py"
    assert re.fullmatch(r"python3\.1[1-9]", function["Runtime"])
    assert f"def {attribute}(" in WORKER_FILE.read_text()
    assert function["FunctionName"] == {"Ref": "FunctionName"}


def test_schedule_rule_targets_the_function_with_a_permission(rendered: dict[str, Any]) -> None:
    (rule,) = _resources(rendered, "AWS::Events::Rule").values()
    assert rule["Properties"]["State"] == "ENABLED"
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [FUNCTION, "Arn"]}
    (permission,) = _resources(rendered, "AWS::Lambda::Permission").values()
    rule_name = next(iter(_resources(rendered, "AWS::Events::Rule")))
    assert permission["Properties"]["Principal"] == "events.amazonaws.com"
    assert permission["Properties"]["Action"] == "lambda:InvokeFunction"
    assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": [rule_name, "Arn"]}


def test_library_policy_lists_exactly_the_runtime_actions(rendered: dict[str, Any]) -> None:
    policies = _role_policies(rendered)
    assert set(policies) == {LIBRARY_POLICY, WORKER_POLICY}
    assert _actions([policies[LIBRARY_POLICY]]) == RUNTIME_ACTIONS
    every = _actions(policies.values())
    assert not every & CREATE_TABLE_ACTIONS, "create-table is an operator's job, not the function's"
    assert not any("*" in action for action in every)
    for statement in _statements(policies.values()):
        assert statement["Effect"] == "Allow"
        if "*" in _listify(statement["Resource"]):
            assert set(_listify(statement["Action"])) <= RESOURCE_STAR_ONLY, statement


def test_defer_role_lets_scheduler_invoke_the_function_and_nothing_else(rendered: dict[str, Any]) -> None:
    role = _resources(rendered, "AWS::IAM::Role")["DeferRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    (policy,) = role["Policies"]
    assert _actions([policy["PolicyDocument"]]) == {"lambda:InvokeFunction"}
    (passing,) = [s for s in _statements(_role_policies(rendered).values())
                  if "iam:PassRole" in _listify(s["Action"])]
    assert passing["Resource"] == {"Fn::GetAtt": ["DeferRole", "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


def _readme_policy(tmp_path: Path) -> dict[str, Any]:
    """The policy document of the docs' "The IAM policy" section, decoded like the template."""
    readme = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = readme.split("## The IAM policy", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None, "the docs' IAM policy section has no yaml block"
    path = tmp_path / "readme-policy.yaml"
    # A list at the top is not a template: wrap it as one so the same loader reads it.
    path.write_text("Policy:\n" + "".join(f"  {line}\n" for line in block.group(1).splitlines()))
    (document,) = load_template(path)["Policy"]
    return document


def test_readme_policy_is_the_templates_library_policy(source: dict[str, Any], tmp_path: Path) -> None:
    """One policy, three places: the docs' block, template.yaml and siblings.iam agree both ways
    (a user copying the docs' block gets every action the library calls, and nothing else)."""
    readme = _readme_policy(tmp_path)
    (template, _worker) = source["Resources"][FUNCTION]["Properties"]["Policies"]
    assert _actions([readme]) == RUNTIME_ACTIONS
    assert _statements([readme]) == _statements([template])


# --- (b) the stack on moto ---
@dataclass
class Stack:
    """The deployed stack: outputs, the function's environment and its role's policies."""

    outputs: dict[str, str]
    environment: dict[str, str]
    """As Lambda passes it: every value a string."""
    policies: dict[str, dict[str, Any]]
    """Inline policies of the function's role, intrinsics resolved by moto."""

    @property
    def function_arn(self) -> str:
        """The worker's unqualified ARN."""
        return self.outputs["FunctionArn"]

    @property
    def account(self) -> str:
        """Account id of the stack."""
        return self.function_arn.split(":")[4]


def _policy_document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        decoded: dict[str, Any] = json.loads(unquote(raw))
    except ValueError:
        # moto stores a template's inline policy with str(dict), not JSON.
        decoded = ast.literal_eval(raw)
    return decoded


@pytest.fixture
def stack(aws: Aws) -> Stack:
    """template.yaml deployed as a stack; counts start at zero afterwards."""
    outputs = deploy_template(aws.session, aws.endpoint_url, TEMPLATE, stack_name=STACK)
    described = aws.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    assert outputs == {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}

    configuration = aws.client("lambda").get_function(FunctionName=outputs["FunctionArn"])[
        "Configuration"
    ]
    environment = {k: str(v) for k, v in configuration["Environment"]["Variables"].items()}
    iam = aws.client("iam")
    role = configuration["Role"].rsplit("/", 1)[-1]
    policies = {
        name: _policy_document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    }
    aws.recorder.reset()
    return Stack(outputs, environment, policies)


def test_stack_creates_a_table_the_library_uses(aws: Aws, stack: Stack) -> None:
    name = stack.outputs["SiblingsTableName"]
    assert name == stack.environment["SIBLINGS_TABLE_NAME"]
    config = SiblingsConfig(table_name=name, endpoint_url=aws.endpoint_url, region_name=LOCAL_REGION)
    store = DynamoStore(config, session=aws.session)
    store.put("probe#1", {"hello": "world"}, fresh_until=4e9, keep_until=4e9)
    item = store.get("probe#1")
    assert item is not None and item.value == {"hello": "world"} and item.keep_until == 4e9

    dynamodb = aws.client("dynamodb")
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "ttl"
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # `siblings create-table` on the stack's table finds nothing to do.
    assert store.ensure_table() is False
    assert aws.recorder.count("dynamodb", "UpdateTimeToLive") == 0


def test_stack_environment_configures_the_library(aws: Aws, stack: Stack) -> None:
    config = SiblingsConfig.from_env(stack.environment)
    assert config.table_name == stack.outputs["SiblingsTableName"]
    assert config.payload_bucket == stack.outputs["PayloadBucketName"]
    assert config.payload_prefix == SiblingsConfig().payload_prefix
    assert config.max_concurrency == 50 and config.max_generations == 100
    assert aws.client("s3").head_bucket(Bucket=config.payload_bucket)
    work = stack.environment["CURSOR_WORKER_TABLE"]
    assert work == stack.outputs["WorkTableName"]
    assert aws.client("dynamodb").describe_table(TableName=work)["Table"]["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"}
    ]


def test_stack_function_allows_recursive_loops_for_our_own_guards(aws: Aws, stack: Stack) -> None:
    lam = aws.client("lambda")
    assert lam.get_function_recursion_config(FunctionName=stack.function_arn)["RecursiveLoop"] == "Allow"


def test_stack_creates_the_dashboard(aws: Aws, stack: Stack) -> None:
    name = stack.outputs["DashboardName"]
    body = json.loads(aws.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"])
    assert len(body["widgets"]) == 5
    assert "Capacity: deferred beside refused" in {w["properties"]["title"] for w in body["widgets"]}


def test_stack_rule_is_the_one_the_spawn_guard_checks(
    aws: Aws, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _function_env(monkeypatch, aws, stack)
    context = FakeContext(stack.function_arn)
    # In-process caches only, so the second manager looks the rule up again.
    enabled = SiblingsManager({"use_dynamodb": False}, session=aws.session)
    assert enabled.any_events_rules_enabled(context) is True
    state = enabled.guards.rules_state(read_context(context)).value
    assert state["rule"] == stack.outputs["ScheduleRuleName"]

    aws.client("events").disable_rule(Name=stack.outputs["ScheduleRuleName"])
    disabled = SiblingsManager({"use_dynamodb": False}, session=aws.session)
    assert disabled.any_events_rules_enabled(context) is False
    refused = disabled.spawn_sibling(context, {"cursor": 1})
    assert not refused.spawned and refused.reason == "rules_disabled"


# --- (c) every request the code makes, against the role's policies ---
Request = tuple[str, str]
"""``(IAM action, resource ARN)`` a request needs, ``"*"`` for no resource."""


def authorisations(call: Call, environ: dict[str, Any], body: bytes, account: str) -> list[Request]:
    """What IAM checks for one recorded request: its actions and the resources they act on."""
    service, operation = call
    _, region = credential_scope(environ)
    path = environ.get("PATH_INFO", "")
    if service == "dynamodb":
        payload = json.loads(body or b"{}")

        def table(name: str) -> str:
            return f"arn:aws:dynamodb:{region}:{account}:table/{name}"

        if operation.startswith("Transact"):  # authorised item by item
            return [
                (f"dynamodb:{kind}Item", table(spec["TableName"]))
                for item in payload["TransactItems"]
                for kind, spec in item.items()
            ]
        if operation.startswith("Batch"):  # one action on each table of the batch
            return [(iam_action(service, operation), table(name)) for name in payload["RequestItems"]]
        return [(iam_action(service, operation), table(payload["TableName"]))]
    if service == "s3":
        return [(iam_action(service, operation), "arn:aws:s3:::" + unquote(path.lstrip("/")))]
    if service == "lambda" and operation == "Invoke":
        target = unquote(path.split("/")[3])
        arn = target if target.startswith("arn:") else (
            f"arn:aws:lambda:{region}:{account}:function:{target}"
        )
        qualifier = parse_qs(environ.get("QUERY_STRING", "")).get("Qualifier")
        return [(iam_action(service, operation), f"{arn}:{qualifier[0]}" if qualifier else arn)]
    if service == "lambda" and operation in {"GetFunctionConcurrency", "GetFunctionRecursionConfig"}:
        name = unquote(path.split("/")[3])
        return [(iam_action(service, operation), f"arn:aws:lambda:{region}:{account}:function:{name}")]
    if service == "scheduler" and operation == "CreateSchedule":  # and PassRole of its role
        request = json.loads(body)
        group, name = request.get("GroupName", "default"), unquote(path.rsplit("/", 1)[-1])
        return [
            (iam_action(service, operation), f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{name}"),
            ("iam:PassRole", request["Target"]["RoleArn"]),
        ]
    if service == "events" and operation == "DescribeRule":
        name = json.loads(body)["Name"]
        return [(iam_action(service, operation), f"arn:aws:events:{region}:{account}:rule/{name}")]
    return [(iam_action(service, operation), "*")]


class RequestLog:
    """A ``CallRecorder`` listener keeping each request's authorisations and Invoke events."""

    def __init__(self, account: str) -> None:
        self.account = account
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.invoke_events: list[dict[str, Any]] = []

    def listener(self, call: Call, environ: dict[str, Any], body: bytes) -> None:
        """Record one request."""
        needed = authorisations(call, environ, body, self.account)
        with self._lock:
            self.requests.extend(needed)
            if call == ("lambda", "Invoke"):
                self.invoke_events.append(json.loads(body))


def _pattern(text: str) -> re.Pattern[str]:
    """An IAM pattern (``*`` any run, ``?`` one character) as a regex."""
    return re.compile(re.escape(text).replace(r"\*", ".*").replace(r"\?", "."))


def allowed(documents: Iterable[dict[str, Any]], action: str, resource: str) -> bool:
    """Whether some Allow statement of ``documents`` covers ``action`` on ``resource``."""
    for statement in _statements(documents):
        if statement.get("Effect") != "Allow":
            continue
        if not any(
            _pattern(p.lower()).fullmatch(action.lower()) for p in _listify(statement["Action"])
        ):
            continue
        if any(_pattern(p).fullmatch(resource) for p in _listify(statement["Resource"])):
            return True
    return False


@dataclass
class FakeContext:
    """A Lambda context: ``plenty`` calls of ``get_remaining_time_in_millis`` see 50 s left,
    later ones see 5 s, under the worker's 10 s shutdown period (a deadline without sleeping).

    50 s of the stack's 60 s timeout: an execution 10 s in, so a root's position is looked up
    once, as in Lambda, instead of asked again for a second as a just-started one would be."""

    invoked_function_arn: str
    plenty: int = 1_000_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    calls: int = 0

    @property
    def function_name(self) -> str:
        """The bare function name."""
        return self.invoked_function_arn.split(":")[6]

    def get_remaining_time_in_millis(self) -> int:
        """Remaining time, running out after ``plenty`` calls."""
        self.calls += 1
        return 50_000 if self.calls <= self.plenty else 5_000


class ThrottledLambda:
    """A Lambda client whose every Invoke is throttled (a 429 that outlasts the retries), for a
    function deployed as the template does (``RecursiveLoop: Allow``)."""

    def get_function_recursion_config(self, **kwargs: Any) -> dict[str, Any]:
        """The template's setting."""
        return {"RecursiveLoop": "Allow"}

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        """Raise Lambda's TooManyRequestsException."""
        response: Any = {
            "Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        }
        raise ClientError(response, "Invoke")


def _function_env(monkeypatch: pytest.MonkeyPatch, aws: Aws, stack: Stack) -> None:
    """The deployed function's environment, with every client pointed at the test server."""
    for name, value in stack.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SIBLINGS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.setenv("SIBLINGS_REGION_NAME", LOCAL_REGION)
    monkeypatch.setenv("SIBLINGS_INVOKE_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", stack.function_arn.split(":")[6])


def _recorded_actions(aws: Aws) -> set[str]:
    """The actions of the requests made, and those IAM checks with them (PassRole)."""
    made = {
        iam_action(service, operation)
        for service, operation in aws.recorder.actions()
        if not operation.startswith("Transact")
    }
    return made.union(*(IMPLIED_ACTIONS.get(action, frozenset()) for action in made))


def test_library_calls_exactly_what_its_policy_allows(
    aws: Aws, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = stack.function_arn.split(":")[6]
    # Every manager and the estimator on one virtual clock: the metric window stays the data's
    # however slow the machine, and no wait of the library's costs real time.
    clock = minute_clock()
    put_lambda_metrics(aws.client("cloudwatch"), name, [(60, 1000), (120, 500)], clock=clock)
    _function_env(monkeypatch, aws, stack)
    aws.recorder.reset()
    log = RequestLog(stack.account)
    aws.recorder.listeners.append(log.listener)

    # The estimator alone: cache miss, lease, CloudWatch, shared item.
    estimator = ConcurrencyEstimator(SiblingsConfig.from_env(), session=aws.session, clock=clock)
    estimate = estimator.estimate(name)
    assert estimate.source == "cloudwatch" and estimate.value >= 1

    # A spawn guarded by the stack's schedule rule and the estimate (the deployed manager).
    manager = SiblingsManager(session=aws.session, clock=clock)
    spawned = manager.spawn_sibling(FakeContext(stack.function_arn), {"cursor": 1})
    assert spawned.spawned and not spawned.offloaded, spawned
    assert spawned.guards["eventbridge"]["rule"] == stack.outputs["ScheduleRuleName"]

    # A payload over the inline limit goes to the stack's bucket; the sibling reads it back.
    big = SiblingsManager({"max_payload_bytes": 4096}, session=aws.session, clock=clock)
    payload = {"rows": [f"row-{i:05d}-" + "x" * 90 for i in range(200)]}
    offloaded = big.spawn_sibling(FakeContext(stack.function_arn), payload)
    assert offloaded.spawned and offloaded.offloaded, offloaded
    event = log.invoke_events[-1]
    assert len(json.dumps(event)) < 4096
    sibling = SiblingsManager(session=aws.session, clock=clock)  # another container
    assert sibling.load_payload(event, FakeContext(stack.function_arn)) == payload

    # Busy (max_concurrency 1, the estimate at least 1): deferred through the stack's role.
    busy = SiblingsManager({"defer_when_busy": True, "max_concurrency": 1}, session=aws.session, clock=clock)
    deferred = busy.spawn_sibling(FakeContext(stack.function_arn), {"cursor": 3})
    assert deferred.deferred, deferred

    # An Invoke that keeps failing: the spawn's claim is released for a later retry.
    failing = SiblingsManager(
        {"invoke_max_attempts": 1}, session=aws.session, lambda_client=ThrottledLambda(), clock=clock
    )
    with pytest.raises(SpawnFailed):
        failing.spawn_sibling(FakeContext(stack.function_arn), {"cursor": 2})

    library = stack.policies[LIBRARY_POLICY]
    denied = [r for r in log.requests if not allowed([library], *r)]
    assert denied == []
    assert {action for action, _ in log.requests} == _recorded_actions(aws)
    # Least privilege: every action of the policy was needed by some request above.
    assert _recorded_actions(aws) == _actions([library]) == RUNTIME_ACTIONS


def _load_worker(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh import of the packaged cursor_worker.py (a cold container)."""
    name = f"cursor_worker_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, WORKER_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_example_worker_runs_under_the_stack_role(
    aws: Aws, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _function_env(monkeypatch, aws, stack)
    # The worker's own client is made by boto3.client("dynamodb"), as on Lambda.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.setenv("CURSOR_WORKER_RECORD_SECONDS", "0")
    monkeypatch.setattr(siblings.handler, "_default", None)
    probe = boto3.client("dynamodb", region_name=LOCAL_REGION)
    assert probe.meta.endpoint_url == aws.endpoint_url, "refusing to run against a real endpoint"
    worker = _load_worker(monkeypatch)
    work_table = stack.environment["CURSOR_WORKER_TABLE"]
    worker.ChainStore(aws.client("dynamodb"), work_table).add_chain("chain-1", 5)  # the operator
    aws.recorder.reset()
    log = RequestLog(stack.account)
    aws.recorder.listeners.append(log.listener)

    # The schedule adopts the parked chain; time runs out after a few records: a sibling
    # takes over and finishes.
    first = worker.lambda_handler(SCHEDULED_EVENT, FakeContext(stack.function_arn, plenty=3))
    assert first["action"] == "spawned" and first["from"] == 0 and 0 < first["to"] < 5, first
    (sibling_event,) = log.invoke_events
    second = worker.lambda_handler(sibling_event, FakeContext(stack.function_arn))
    assert second["action"] == "done", second
    assert (second["from"], second["to"], second["generation"]) == (first["to"], 5, 1), second

    policies = stack.policies.values()
    denied = [r for r in log.requests if not allowed(policies, *r)]
    assert denied == []
    work_arn = f"arn:aws:dynamodb:{LOCAL_REGION}:{stack.account}:table/{work_table}"
    worker_actions = {action for action, resource in log.requests if resource == work_arn}
    assert worker_actions == _actions([stack.policies[WORKER_POLICY]])
    library_requests = [r for r in log.requests if r[1] != work_arn]
    assert all(allowed([stack.policies[LIBRARY_POLICY]], *r) for r in library_requests)


def test_policy_check_denies_what_the_role_does_not_allow(stack: Stack) -> None:
    """The checker above is not vacuous: near misses are denied."""
    library = [stack.policies[LIBRARY_POLICY]]
    bucket = stack.outputs["PayloadBucketName"]
    name = stack.function_arn.split(":")[6]
    table = f"arn:aws:dynamodb:{LOCAL_REGION}:{stack.account}:table/{stack.outputs['SiblingsTableName']}"
    prefix = f"arn:aws:s3:::{bucket}/{SiblingsConfig().payload_prefix}"
    assert allowed(library, "lambda:InvokeFunction", stack.function_arn)
    assert allowed(library, "lambda:InvokeFunction", stack.function_arn + ":live")
    assert not allowed(library, "lambda:InvokeFunction", stack.function_arn + "-other")
    assert allowed(library, "s3:GetObject", f"{prefix}{name}/chain/1.json")
    assert not allowed(library, "s3:GetObject", f"{prefix}other-function/chain/1.json")
    assert not allowed(library, "s3:DeleteObject", f"{prefix}{name}/chain/1.json")
    assert allowed(library, "dynamodb:UpdateItem", table)
    assert not allowed(library, "dynamodb:DescribeTable", table)
    assert not allowed(library, "dynamodb:Scan", table)
    assert not allowed(library, "dynamodb:GetItem", table + "-other")
    assert not allowed(library, "events:ListRules", "*")


def test_create_table_needs_only_the_operator_actions(aws: Aws) -> None:
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="siblings-ttl-off",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws.recorder.reset()

    def config(table: str) -> SiblingsConfig:
        return SiblingsConfig(table_name=table, endpoint_url=aws.endpoint_url, region_name=LOCAL_REGION)

    assert ensure_table(config("siblings-new"), aws.session) is True  # created, TTL on
    assert ensure_table(config("siblings-new"), aws.session) is False  # nothing to do
    assert ensure_table(config("siblings-ttl-off"), aws.session) is False  # TTL switched on
    used = _recorded_actions(aws)
    status = dynamodb.describe_time_to_live(TableName="siblings-ttl-off")["TimeToLiveDescription"]
    assert status["TimeToLiveStatus"] == "ENABLED"
    assert used == CREATE_TABLE_ACTIONS


def test_iam_action_names() -> None:
    assert iam_action("monitoring", "GetMetricData") == "cloudwatch:GetMetricData"
    assert iam_action("lambda", "Invoke") == "lambda:InvokeFunction"
    assert iam_action("s3", "HeadObject") == "s3:GetObject"
    assert iam_action("dynamodb", "BatchGetItem") == "dynamodb:BatchGetItem"
    with pytest.raises(ValueError, match="per item"):
        iam_action("dynamodb", "TransactWriteItems")
