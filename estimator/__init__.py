"""Concurrency estimates for AWS Lambda functions, from one CloudWatch call, shared fleet-wide.

>>> from estimator import estimate_concurrency
>>> estimate_concurrency("my-function")  # doctest: +SKIP
3
"""

from estimator.config import Config
from estimator.estimator import ConcurrencyEstimator, Estimate, ensure_table, estimate_concurrency
from estimator.exceptions import (
    EstimateUnavailable,
    LookupFailed,
    SiblingsError,
    StoreUnavailable,
)

__all__ = [
    "ConcurrencyEstimator",
    "Config",
    "Estimate",
    "EstimateUnavailable",
    "LookupFailed",
    "SiblingsError",
    "StoreUnavailable",
    "ensure_table",
    "estimate_concurrency",
]
