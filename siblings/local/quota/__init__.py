"""AWS's default API quotas in front of the local moto server, answered the way AWS answers.

moto never throttles. :class:`QuotaLayer` is a WSGI middleware that keeps one token bucket per
account, Region and quota (see :data:`DEFAULT_QUOTAS`) and, over quota, replies with the
service's own throttling error on its own wire protocol, so that botocore's retry logic runs
exactly as it would against AWS. It counts every signed call by ``(service, action)``: calls,
throttled responses and retries (botocore's ``amz-sdk-request: attempt=N`` header).

``quota_scale`` multiplies every quota. A benchmark run at scale ``s`` with its request rates
also multiplied by ``s`` behaves like an unscaled run whose clock is ``1/s`` times slower: one
benchmark second stands for ``s`` AWS seconds, so calls per decision and the throttled share
are unchanged while a small machine can reach saturation.

Stats and settings are also served over HTTP on reserved paths, so a server running in another
process (``python -m siblings.local.quota``, or :class:`QuotaServerProcess`) can be read:

- ``GET /_quota/stats``: counts as JSON;
- ``POST /_quota/reset``: zero the counts and refill every bucket;
- ``POST /_quota/config`` with ``{"quota_scale": 0.1, "enabled": true}``: change settings.

Modules: :mod:`~.table` (the quotas), :mod:`~.costs` and :mod:`~.buckets` (what a call draws,
from which bucket), :mod:`~.layer` (the middleware), :mod:`~.throttle_errors` (AWS's answers),
:mod:`~.client` and :mod:`~.process` (the layer over HTTP and in a process of its own).
"""

from siblings.local.quota.cbor import cbor_encode
from siblings.local.quota.client import QuotaStatsClient
from siblings.local.quota.layer import QuotaLayer
from siblings.local.quota.process import QuotaServerProcess
from siblings.local.quota.stats import RESERVED_PREFIX, CallStats
from siblings.local.quota.table import DEFAULT_QUOTAS, Quota, Scope, Unit
from siblings.local.quota.throttle_errors import throttle_response

__all__ = [
    "DEFAULT_QUOTAS",
    "RESERVED_PREFIX",
    "CallStats",
    "Quota",
    "QuotaLayer",
    "QuotaServerProcess",
    "QuotaStatsClient",
    "Scope",
    "Unit",
    "cbor_encode",
    "throttle_response",
]
