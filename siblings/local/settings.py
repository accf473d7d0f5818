"""What a simulated fleet runs, and the names of what it creates on the embedded server.

Kept free of the simulator's heavy imports: ``siblings --help`` reads the defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

FUNCTION_NAME = "cursor-worker"
WORK_TABLE = "cursor-worker-chains"
OUTPUT_TABLE = "cursor-worker-output"
PAYLOAD_BUCKET = "cursor-worker-payloads"
RULE_NAME = "cursor-worker-schedule"
SHARED_TABLE = "lambda-siblings"
TEMPLATE_TABLE = "sim-stack-siblings"
"""The shared table's name given to a ``--template`` stack: not the template's default, so a run
shows which table it used."""
DEFAULT_WORKER_FILE = Path(__file__).resolve().parent / "workers" / "cursor_worker.py"
"""The handler the fleet runs: shipped in the package, the same file ``template.yaml`` deploys."""


class FaultKind(StrEnum):
    """The faults ``--fault-rate`` injects, each decided on its own (``--fault KIND=RATE``)."""

    INVOKE_THROTTLE = "invoke_throttle"
    """An ``Invoke`` answered ``429 TooManyRequestsException`` (nothing runs)."""
    METRIC_DATA_THROTTLE = "metric_data_throttle"
    """A ``GetMetricData`` call answered ``400 Throttling``."""
    HANDLER_CRASH = "handler_crash"
    """A handler attempt raises mid-work or after returning; Lambda retries it."""
    CRASH_AFTER_INVOKE = "crash_after_invoke"
    """A parent's process dies after its Invoke was answered, before its spawn record."""
    LOST_INVOKE_REPLY = "lost_invoke_reply"
    """A sibling's Invoke runs, but its reply is lost and the caller retries it."""


def check_rate(rate: float, what: str = "rate") -> float:
    """``rate`` if it is a probability; ``ValueError`` naming ``what`` otherwise."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{what} must be within 0..1, got {rate!r}")
    return rate


@dataclass(frozen=True)
class FleetSettings:
    """What to run; see ``siblings simulate --help`` for each knob."""

    chains: int = 8
    records: int = 240
    max_concurrency: int | None = 6
    invocation_seconds: float = 4.0
    shutdown_seconds: float = 2.0
    record_seconds: float = 0.03
    fault_rate: float = 0.0
    fault_rates: tuple[tuple[FaultKind, float], ...] = ()
    """Rates of single kinds of fault, overriding ``fault_rate`` for them."""
    seed: int = 7
    time_scale: float = 60.0
    max_generations: int = 30
    reserved_concurrency: int | None = None
    defer: bool = False
    """Defer capacity refusals to a local EventBridge Scheduler instead of parking chains."""
    timeout_seconds: float = 120.0
    retry_delays: tuple[float, ...] = (0.5, 1.0)
    worker_file: Path = DEFAULT_WORKER_FILE
    drop_record: tuple[str, int] | None = None
    """Test hook: delete this record's result after its commit (verification must fail)."""
    template: Path | None = None
    """A SAM template to deploy first; its stack's shared table and payload bucket are used."""
    template_table_name: str = TEMPLATE_TABLE
    """The template's ``SiblingsTableName`` parameter."""
    recursive_loop: str = "Allow"
    """The function's ``RecursiveLoop``: ``Allow`` as ``template.yaml`` deploys it, or
    ``Terminate`` (Lambda's default), where every spawn is refused and the schedule resumes the
    parked chains."""

    def __post_init__(self) -> None:
        if self.chains < 1 or self.records < 1:
            raise ValueError("chains and records must be >= 1")
        check_rate(self.fault_rate, "fault_rate")
        for kind, rate in self.fault_rates:
            check_rate(rate, f"the rate of {FaultKind(kind)}")
        if self.shutdown_seconds >= self.invocation_seconds:
            raise ValueError("shutdown_seconds must be shorter than invocation_seconds")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.recursive_loop not in {"Allow", "Terminate"}:
            raise ValueError(f"recursive_loop must be Allow or Terminate, got {self.recursive_loop!r}")

    def rate(self, kind: FaultKind) -> float:
        """How often faults of ``kind`` strike: its own rate if given, else ``fault_rate``."""
        return dict(self.fault_rates).get(kind, self.fault_rate)

    @property
    def chain_ids(self) -> list[str]:
        """The chains' ids."""
        return [f"c{index:03d}" for index in range(self.chains)]

    @property
    def stale_after_seconds(self) -> float:
        """When a chain nobody commits to counts as abandoned: longer than three attempts."""
        return 3 * (self.invocation_seconds + 1.0) + sum(self.retry_delays) + 2.0
