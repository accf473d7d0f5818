"""Is any EventBridge rule that targets the function enabled? Asked cheaply and cached.

sosw lists the account's rules (first page only) and then every rule's targets, a number of
calls that grows with the account. Here the question is asked from the function's side:
``ListRuleNamesByTarget`` (every page) for the ARN the function was invoked with, then
``DescribeRule`` on those rules until one is ENABLED. Only rules whose target is exactly the
ARN the function was invoked with count, as in sosw: a rule on ``fn:prod`` counts for
executions of ``fn:prod``, a rule on the unqualified ``fn`` does not. Disabling the rules on
one alias must stop that alias's chains even while another alias (or ``$LATEST``) keeps an
enabled schedule. Siblings are invoked through the same ARN as their parent, so a chain stays
under one ARN. Unlike sosw, every page is followed (sosw read the first page of ``ListRules``
only) and ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`` counts as enabled.

Only the account's default event bus is searched, where scheduled rules live. The answer is a
JSON dict cached (key :func:`siblings.keys.rules_key`) by :class:`estimator.shared_cache.TwoTierCache` for
``rules_cache_ttl_seconds``. Rule *names* rarely change: the guards cache them apart (key
:func:`siblings.keys.rule_names_key`) for ``rule_names_ttl_seconds``, or until a DescribeRule
of a cached name finds it gone; the common case then costs one DescribeRule per TTL window
fleet-wide, and one ListRuleNamesByTarget an hour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.attributes import BooleanAttribute, ListAttribute, UnicodeAttribute

from estimator.item_kinds import ItemKind, ItemValue
from siblings.context import InvocationInfo
from siblings.keys import RULE_NAMES_PREFIX, RULES_PREFIX

NamesOf = Callable[[str, bool], list[str]]
"""``(target ARN, relist)`` -> the names of the rules targeting it (relisted if asked)."""


class RuleState(ItemValue):
    """A cached rule state as :class:`RuleLookup` writes it: is a rule targeting the ARN
    enabled, which one (with its target), and the names it looked at."""

    optional = frozenset({"checked"})
    enabled = BooleanAttribute()
    rule = UnicodeAttribute(null=True)
    target = UnicodeAttribute(null=True)
    checked = ListAttribute(of=UnicodeAttribute)


class RulesItem(ItemKind):
    """``rules#<scope>[:q]``: the EventBridge guard's answer for one ARN."""

    prefix = RULES_PREFIX
    schema = RuleState


class RuleNames(ItemValue):
    """The names of the rules targeting one ARN, as the rule-state refresher lists them."""

    names = ListAttribute(of=UnicodeAttribute)


class RuleNamesItem(ItemKind):
    """``rulenames#<scope>[:q]``: the rule names, relisted hourly or when one is gone."""

    prefix = RULE_NAMES_PREFIX
    schema = RuleNames


def target_arns(info: InvocationInfo) -> list[str]:
    """ARNs a rule may target to count for this execution: the one it was invoked with."""
    return [info.function_arn]


class RuleLookup:
    """Answers "is an EventBridge rule targeting this function enabled?" from EventBridge."""

    def __init__(self, events_client: Any) -> None:
        self._events = events_client

    def rule_names(self, target_arn: str) -> Iterator[str]:
        """Names of the default bus's rules targeting ``target_arn``, following every page."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"TargetArn": target_arn}
            if token:
                kwargs["NextToken"] = token
            page = self._events.list_rule_names_by_target(**kwargs)
            yield from page.get("RuleNames", [])
            token = page.get("NextToken")
            if not token:
                return

    def state(self, info: InvocationInfo, names_of: NamesOf | None = None) -> dict[str, Any]:
        """The rule state of the function as a JSON-able dict.

        ``{"enabled": bool, "rule": name or None, "target": arn or None, "checked": [names]}``.
        Stops at the first ENABLED rule. ``names_of(arn, relist)`` gives the rule names of a
        target (default: listed now); a name that turns out gone makes it asked once more with
        ``relist=True`` (a cache of names must list them again). AWS errors propagate (the
        cache turns them into ``LookupFailed`` or serves a stale answer).
        """
        listed = names_of or (lambda arn, relist: list(self.rule_names(arn)))
        checked: list[str] = []
        for arn in target_arns(info):
            names, relisted = listed(arn, False), names_of is None
            while names:
                name = names.pop(0)
                if name in checked:
                    continue
                checked.append(name)
                enabled = self._enabled(name)
                if enabled is None and not relisted:  # gone: the cached names are out of date
                    names, relisted = listed(arn, True), True
                elif enabled:
                    return {"enabled": True, "rule": name, "target": arn, "checked": checked}
        return {"enabled": False, "rule": None, "target": None, "checked": checked}

    def _enabled(self, name: str) -> bool | None:
        """Whether rule ``name`` is enabled; ``None`` if it no longer exists."""
        try:
            described = self._events.describe_rule(Name=name)
        except ClientError as exc:
            # Deleted since it was listed: it no longer guards anything.
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        # ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS is enabled too.
        return str(described.get("State", "")).startswith("ENABLED")
