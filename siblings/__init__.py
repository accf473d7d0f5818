"""Self-continuing AWS Lambda workers: spawn a sibling with the remaining work, safely.

>>> from siblings import SiblingsManager, Invocation, load_payload  # doctest: +SKIP

* :class:`SiblingsManager` - sosw's API (``spawn_sibling``, ``any_events_rules_enabled``,
  ``get_approximate_concurrent_executions``) with cached loop guards, idempotent spawns and
  S3 offload of large payloads; configured by :class:`SiblingsConfig`.
* :class:`Invocation`, :class:`TimeBudget`, :func:`sufficient_execution_time_left` - handler
  helpers (:mod:`siblings.handler`).
* :func:`load_payload` - the payload a sibling was spawned with (reserved key stripped, S3
  pointer resolved).
* :func:`disable_spawning`, :func:`enable_spawning`, :func:`spawning_status` - the operator's
  kill switch (:mod:`siblings.killswitch`).

The package builds on :mod:`estimator` and never imports the simulator
(:mod:`siblings.local`, the ``local`` extra).
"""

from estimator import __version__
from siblings.config import GuardErrorPolicy, SiblingsConfig
from siblings.defer import RelayFailed, StepRelayed
from siblings.errors import (
    DuplicateSibling,
    EstimateUnavailable,
    LookupFailed,
    NoRegion,
    PayloadTooLarge,
    PayloadUnavailable,
    SiblingsError,
    SpawnFailed,
    StoreAccessDenied,
    StoreThrottled,
    StoreUnavailable,
    StoreUnreachable,
    TableMissing,
)
from siblings.handler import Invocation, TimeBudget, sufficient_execution_time_left
from siblings.inbound import load_payload
from siblings.killswitch import (
    FunctionStatus,
    KillState,
    disable_spawning,
    enable_spawning,
    spawning_status,
)
from siblings.manager import SiblingsManager
from siblings.metadata import METADATA_KEY, ChainMetadata
from siblings.result import Reason, SpawnResult

__all__ = [
    "__version__",
    "METADATA_KEY",
    "ChainMetadata",
    "DuplicateSibling",
    "EstimateUnavailable",
    "FunctionStatus",
    "GuardErrorPolicy",
    "Invocation",
    "KillState",
    "LookupFailed",
    "PayloadTooLarge",
    "PayloadUnavailable",
    "Reason",
    "RelayFailed",
    "SiblingsConfig",
    "SiblingsError",
    "SiblingsManager",
    "SpawnFailed",
    "SpawnResult",
    "StepRelayed",
    "StoreUnavailable",
    "NoRegion",
    "StoreAccessDenied",
    "StoreThrottled",
    "StoreUnreachable",
    "TableMissing",
    "TimeBudget",
    "disable_spawning",
    "enable_spawning",
    "load_payload",
    "spawning_status",
    "sufficient_execution_time_left",
]
