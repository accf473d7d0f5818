"""What a simulated fleet runs, and the names of what it creates on the embedded server.

Kept free of the simulator's heavy imports: ``siblings --help`` reads the defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    seed: int = 7
    time_scale: float = 60.0
    max_generations: int = 30
    reserved_concurrency: int | None = None
    timeout_seconds: float = 120.0
    retry_delays: tuple[float, ...] = (0.5, 1.0)
    worker_file: Path = DEFAULT_WORKER_FILE
    drop_record: tuple[str, int] | None = None
    """Test hook: delete this record's result after its commit (verification must fail)."""
    template: Path | None = None
    """A SAM template to deploy first; its stack's shared table and payload bucket are used."""
    template_table_name: str = TEMPLATE_TABLE
    """The template's ``SiblingsTableName`` parameter."""

    def __post_init__(self) -> None:
        if self.chains < 1 or self.records < 1:
            raise ValueError("chains and records must be >= 1")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within 0..1")
        if self.shutdown_seconds >= self.invocation_seconds:
            raise ValueError("shutdown_seconds must be shorter than invocation_seconds")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")

    @property
    def chain_ids(self) -> list[str]:
        """The chains' ids."""
        return [f"c{index:03d}" for index in range(self.chains)]

    @property
    def stale_after_seconds(self) -> float:
        """When a chain nobody commits to counts as abandoned: longer than three attempts."""
        return 3 * (self.invocation_seconds + 1.0) + sum(self.retry_delays) + 2.0
