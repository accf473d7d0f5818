"""Errors of the local simulator (``siblings simulate``), kept out of the library's own."""

from __future__ import annotations

from siblings.errors import SiblingsError


class StackDeployFailed(SiblingsError):
    """A template did not deploy on the local server (``siblings simulate --template``)."""

    def __init__(self, stack_name: str, status: str, reason: str = "") -> None:
        self.stack_name = stack_name
        self.status = status
        self.reason = reason
        super().__init__(f"{stack_name!r} not deployed: {status}" + (f": {reason}" if reason else ""))
