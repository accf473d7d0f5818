"""The IAM actions lambda-siblings needs, for a least-privilege role (see ``template.yaml``).

A function that uses :class:`~siblings.SiblingsManager` (and the estimator behind it) calls
exactly the actions in :data:`RUNTIME_ACTIONS`; ``tests/integration/test_template.py`` records
the calls the library makes against a local AWS and checks the template's policy against them.
Resources, as the template scopes them:

* ``cloudwatch:GetMetricData``, ``events:ListRuleNamesByTarget``, ``lambda:GetAccountSettings``:
  ``*`` (no resource-level permissions exist for them);
* ``lambda:GetFunctionConcurrency``: the function itself (with ``min_account_headroom``);
* ``lambda:GetFunctionRecursionConfig``: the function itself (``check_recursive_loop``, on by
  default: the spawn is refused while the function's ``RecursiveLoop`` is ``Terminate``);
* ``lambda:InvokeFunction``: the function itself, ``...:function:NAME`` and
  ``...:function:NAME:*`` (a sibling is invoked through its parent's alias or version);
* ``events:DescribeRule``: ``arn:aws:events:REGION:ACCOUNT:rule/*``;
* ``dynamodb:GetItem``, ``PutItem``, ``UpdateItem``, ``DeleteItem``, ``BatchWriteItem``,
  ``BatchGetItem``: the shared table (``DeleteItem`` when a spawn claim is undone;
  ``BatchWriteItem`` writes the spawn record and the child's chain position together;
  ``BatchGetItem`` reads a cold container's kill switch, rule state and estimate at once);
* ``s3:PutObject``, ``s3:GetObject``: ``BUCKET/PREFIX<function name>/*``, with ``payload_bucket``;
* ``scheduler:CreateSchedule``: ``arn:aws:scheduler:REGION:ACCOUNT:schedule/GROUP/siblings-*``
  and ``iam:PassRole`` on ``defer_role_arn`` (passed to ``scheduler.amazonaws.com``), with
  ``defer_when_busy`` (:mod:`siblings.defer`).

With ``trigger_schedules`` set, the function also needs :data:`TRIGGER_SCHEDULE_ACTIONS`
(``scheduler:GetSchedule``) on exactly those schedules, :func:`schedule_arn` of each (the
template triggers its worker with a rule, so its policy does not list it).

Operators need other actions, never the function: :data:`CREATE_TABLE_ACTIONS` for
``siblings create-table``; ``siblings disable/enable`` use ``PutItem`` on the table,
``siblings status`` ``BatchGetItem``; ``siblings estimate`` uses ``GetMetricData``,
``lambda:GetAccountSettings`` and ``GetItem``/``PutItem``/``UpdateItem``.
"""

from __future__ import annotations

from siblings.schedules import normalize_schedule

RUNTIME_ACTIONS: frozenset[str] = frozenset(
    {
        "cloudwatch:GetMetricData",
        "lambda:InvokeFunction",
        "lambda:GetAccountSettings",
        "lambda:GetFunctionConcurrency",
        "lambda:GetFunctionRecursionConfig",
        "events:ListRuleNamesByTarget",
        "events:DescribeRule",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "s3:PutObject",
        "s3:GetObject",
        "scheduler:CreateSchedule",
        "iam:PassRole",
    }
)
"""Every IAM action a function using the library needs at run time (``scheduler:CreateSchedule``
and ``iam:PassRole`` with ``defer_when_busy`` only)."""

IMPLIED_ACTIONS: dict[str, frozenset[str]] = {
    "scheduler:CreateSchedule": frozenset({"iam:PassRole"}),
}
"""Actions IAM also checks for a call, without a request of their own: ``CreateSchedule``
with a ``RoleArn`` needs ``iam:PassRole`` on that role."""

TRIGGER_SCHEDULE_ACTIONS: frozenset[str] = frozenset({"scheduler:GetSchedule"})
"""What a function with ``trigger_schedules`` calls besides :data:`RUNTIME_ACTIONS`."""


def schedule_arn(region: str, account: str, schedule: str, partition: str = "aws") -> str:
    """The IAM resource of one ``trigger_schedules`` entry (``group/name`` or ``name``):
    ``arn:aws:scheduler:REGION:ACCOUNT:schedule/GROUP/NAME``."""
    return f"arn:{partition}:scheduler:{region}:{account}:schedule/{normalize_schedule(schedule)}"


CREATE_TABLE_ACTIONS: frozenset[str] = frozenset(
    {
        "dynamodb:DescribeTable",
        "dynamodb:CreateTable",
        "dynamodb:DescribeTimeToLive",
        "dynamodb:UpdateTimeToLive",
    }
)
"""What ``siblings create-table`` (:func:`estimator.ensure_table`) calls: operators only."""

# SigV4 signing name -> IAM service prefix, where they differ.
_IAM_PREFIX = {"monitoring": "cloudwatch"}
# API operations authorised under another action's name.
_RENAMED = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("s3", "HeadObject"): "GetObject",
}


def iam_action(service: str, operation: str) -> str:
    """The IAM action that authorises an API call, e.g. ``("monitoring", "GetMetricData")`` ->
    ``"cloudwatch:GetMetricData"``, ``("lambda", "Invoke")`` -> ``"lambda:InvokeFunction"``.

    ``service`` is the SigV4 signing name (what :class:`siblings.local.calls.CallRecorder`
    records). DynamoDB transactions have no action of their own: each item is authorised as
    ``UpdateItem``, ``PutItem``, ``DeleteItem`` or ``ConditionCheckItem``, which the operation
    name alone cannot tell, so they raise ``ValueError``.
    """
    if not service or not operation:
        raise ValueError(f"service and operation are required, got {service!r}, {operation!r}")
    if service == "dynamodb" and operation.startswith("Transact"):
        raise ValueError(f"dynamodb:{operation} is authorised per item; inspect the request")
    name = _RENAMED.get((service, operation), operation)
    return f"{_IAM_PREFIX.get(service, service)}:{name}"
