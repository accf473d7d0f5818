"""One signed AWS call as the quota rules see it: who made it, and its JSON body on demand."""

from __future__ import annotations

import json
from typing import Any

from siblings.local.calls import Call, credential_scope


class QuotaRequest:
    """A call's WSGI environ, body and ``(service, action)``; DynamoDB's JSON parsed lazily."""

    def __init__(self, environ: dict[str, Any], body: bytes, call: Call) -> None:
        self.environ = environ
        self.body = body
        self.service, self.action = call
        self.account = credential_scope(environ)
        self._json: dict[str, Any] | None = None

    @property
    def call(self) -> Call:
        """``(service, action)``."""
        return self.service, self.action

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; ``{}`` when it is not one."""
        if self._json is None:
            try:
                loaded = json.loads(self.body or b"{}")
            except ValueError:
                loaded = {}
            self._json = loaded if isinstance(loaded, dict) else {}
        return self._json
