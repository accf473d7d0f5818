"""The shared table's pynamodb model, bound to a config's table, Region, endpoint and
credentials, and the low-level calls of each bound model (:mod:`estimator.lowlevel`).

Binding resolves the Region (:class:`~estimator.exceptions.NoRegion` when there is none) but
connects nothing: pynamodb makes a model's client on its first request, :class:`LowLevel` on
its first call. Bound models are kept per identity and settings, so every store of one table
shares one client of each kind.
"""

from __future__ import annotations

import threading
from typing import Any

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from estimator.config import Config
from estimator.identity import resolve_region
from estimator.lowlevel import LowLevel


class CacheItem(Model):
    """The item schema; :func:`item_model` binds it to a table, region and endpoint."""

    class Meta:
        table_name = "lambda-siblings"

    pk = UnicodeAttribute(hash_key=True)
    value = UnicodeAttribute(null=True)
    fresh_until = NumberAttribute(null=True)
    ttl = TTLAttribute(null=True)
    lease_owner = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    failed_until = NumberAttribute(null=True)
    last_error = UnicodeAttribute(null=True)


DYNAMODB_RETRIES = 2
"""Retries after a DynamoDB call's first attempt: few and fast, since a throttled or failing
table degrades to tier 1 + CloudWatch."""

_models: dict[tuple[Any, ...], type[CacheItem]] = {}
_models_lock = threading.Lock()


def item_model(config: Config, session: Any = None) -> type[CacheItem]:
    """A :class:`CacheItem` subclass bound to ``config``'s table, region, endpoint and timeouts.

    Credentials come from ``session`` (a ``boto3.Session``) when given, else from the
    default chain. Bound models are reused (pynamodb makes each one's client on its first
    request). Raises :class:`NoRegion` when no Region is configured anywhere.
    """
    attrs = meta_attributes(config, session)
    identity = attrs.get("aws_access_key_id") or _default_identity()
    key = (identity, *sorted((name, str(value)) for name, value in attrs.items()))
    with _models_lock:
        model = _models.get(key)
        if model is None:
            meta = type("Meta", (), attrs)
            model = _models[key] = type("BoundCacheItem", (CacheItem,), {"Meta": meta})
        return model


_low_levels: dict[type[CacheItem], LowLevel] = {}


def low_level(model: type[CacheItem]) -> LowLevel:
    """The :class:`LowLevel` calls of ``model``'s table, with its settings (one per model)."""
    with _models_lock:
        low = _low_levels.get(model)
        if low is None:
            low = _low_levels[model] = LowLevel(model.Meta.table_name, model.Meta)
        return low


def _default_identity() -> str | None:
    """Who the default credential chain says we are now: a model (and its client) is kept per
    identity, so changed credentials, or none at all, are not hidden by a cached client."""
    import boto3

    credentials = boto3.Session().get_credentials()
    return None if credentials is None else credentials.get_frozen_credentials().access_key


def meta_attributes(config: Config, session: Any) -> dict[str, Any]:
    """The pynamodb ``Meta`` of ``config``'s table (also the low-level client's settings)."""
    attrs: dict[str, Any] = {
        "table_name": config.table_name,
        "connect_timeout_seconds": config.dynamodb_timeout_seconds,
        "read_timeout_seconds": config.dynamodb_timeout_seconds,
        "max_retry_attempts": DYNAMODB_RETRIES,
        "billing_mode": "PAY_PER_REQUEST",
        "region": resolve_region(config, session, "DynamoDB"),
    }
    if config.endpoint_url:
        attrs["host"] = config.endpoint_url
    if session is not None:
        credentials = session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            attrs["aws_access_key_id"] = frozen.access_key
            attrs["aws_secret_access_key"] = frozen.secret_key
            attrs["aws_session_token"] = frozen.token
    return attrs
