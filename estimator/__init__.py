"""Concurrency estimates for AWS Lambda functions, from one CloudWatch call, shared fleet-wide.

>>> from estimator import estimate_concurrency
>>> estimate_concurrency("my-function")  # doctest: +SKIP
3

The public API is what this module exports. Packages that keep items of their own in the
shared table build on these modules, the documented extension points:
:mod:`estimator.store` (the table, :class:`~estimator.store.DynamoStore`),
:mod:`estimator.shared_cache` (the two tiers with a fleet-wide single flight),
:mod:`estimator.memory` (tier 1), :mod:`estimator.config` and :mod:`estimator.settings` (a
config to extend, and its one parser), :mod:`estimator.aws` (the client factory),
:mod:`estimator.validation` (the function name/ARN parser), :mod:`estimator.polling`,
:mod:`estimator.deadline` (a scope whose calls time out before a deadline),
:mod:`estimator.identity` (the clients' account and Region, which every table key carries),
:mod:`estimator.failures` (the one classification of an AWS SDK error, every library error's
``failure``), :mod:`estimator.item_kinds` (one pynamodb ``Model`` per item kind: its key
prefix, its value's typed fields and their bounds).

Signals, all from one GetMetricData call per refresh (:mod:`estimator.metrics`): Little's law
(``Estimate.value``), the function's observed peak (``Estimate.observed_peak``) and the
account's concurrency (``Estimate.account_concurrency``); the limits they are compared with
come from Lambda's control plane, cached for an hour (:mod:`estimator.limits`).
"""

from estimator.config import Config
from estimator.estimator import (
    ConcurrencyEstimator,
    ConcurrencySignal,
    Estimate,
    ensure_table,
    estimate_concurrency,
)
from estimator.exceptions import (
    AccountUnknown,
    EstimateUnavailable,
    LambdaSiblingsError,
    LookupFailed,
    NoRegion,
    StoreAccessDenied,
    StoreThrottled,
    StoreUnavailable,
    StoreUnreachable,
    TableMissing,
    UnprocessedKeys,
)
from estimator.failures import AwsFailure, FailureKind
from estimator.limits import AccountLimit, ReservedConcurrency


def _version() -> str:
    """The installed distribution's version (one source: pyproject.toml, via its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lambda-siblings")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "__version__",
    "AccountLimit",
    "AccountUnknown",
    "AwsFailure",
    "ConcurrencyEstimator",
    "ConcurrencySignal",
    "Config",
    "Estimate",
    "EstimateUnavailable",
    "FailureKind",
    "LambdaSiblingsError",
    "LookupFailed",
    "ReservedConcurrency",
    "StoreUnavailable",
    "NoRegion",
    "StoreAccessDenied",
    "StoreThrottled",
    "StoreUnreachable",
    "TableMissing",
    "UnprocessedKeys",
    "ensure_table",
    "estimate_concurrency",
]
