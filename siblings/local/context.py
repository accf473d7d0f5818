"""The context object the local Lambda runtime hands to a handler, shaped like AWS's."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LambdaContext:
    """What Lambda's Python runtime passes as ``context``, with a real deadline.

    ``deadline`` is a value of ``clock`` (``time.monotonic`` by default): the runtime stops
    waiting for the handler at that moment and records the attempt as timed out, as Lambda does.
    """

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline: float
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: object | None = None
    client_context: object | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"
        if not self.log_stream_name:
            self.log_stream_name = f"local/[{self.function_version}]{self.aws_request_id[:8]}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the deadline, never negative (Lambda's contract)."""
        return max(0, int((self.deadline - self.clock()) * 1000))
