"""Read and drive a quota layer over HTTP, whichever process its server runs in."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from siblings.local.calls import Call
from siblings.local.quota.stats import RESERVED_PREFIX, CallStats


class QuotaStatsClient:
    """Reads and drives a quota layer over HTTP (its server may live in another process)."""

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.timeout = timeout

    def snapshot(self) -> dict[str, Any]:
        """The JSON document of ``GET /_quota/stats``."""
        return self._request("GET", "stats")

    def stats(self) -> dict[Call, CallStats]:
        """Counts by ``(service, action)``."""
        return {
            (row["service"], row["action"]): CallStats(
                calls=row["calls"],
                throttled=row["throttled"],
                retries=row["retries"],
                unprocessed=row.get("unprocessed", 0),
            )
            for row in self.snapshot()["calls"]
        }

    def reset(self) -> None:
        """Zero the counts and refill every bucket."""
        self._request("POST", "reset", {})

    def configure(self, *, quota_scale: float | None = None, enabled: bool | None = None) -> None:
        """Change the scale and/or switch throttling on or off."""
        settings: dict[str, Any] = {}
        if quota_scale is not None:
            settings["quota_scale"] = quota_scale
        if enabled is not None:
            settings["enabled"] = enabled
        self._request("POST", "config", settings)

    def _request(self, method: str, name: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint_url}{RESERVED_PREFIX}{name}", data=data, method=method
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document
