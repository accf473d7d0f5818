"""A local Lambda runtime: ``Invoke`` calls that reach the moto server run real Python handlers.

moto without Docker answers every ``Invoke`` with a canned string and runs nothing. This package
plugs into :class:`~siblings.local.server.LocalAwsServer` as WSGI middleware and executes the
handler registered for a function the way Lambda does:

- ``InvocationType='Event'``: answered ``202`` with an empty body and a fresh
  ``x-amzn-RequestId`` (a UUID, as Lambda sends), then queued and run on a worker thread.
  A failed attempt (the handler raised or ran past its deadline) is retried twice with the same
  request id and event, after ``retry_delays`` (Lambda waits about 1 and 2 minutes; the local
  default is scaled down to seconds).
- ``InvocationType='DryRun'``: ``204``, nothing runs.
- ``InvocationType='RequestResponse'``: run in the request thread; ``200`` with the result, or
  ``X-Amz-Function-Error: Unhandled`` with Lambda's error document.
- Unknown function or qualifier: moto's own ``404 ResourceNotFoundException`` (the runtime asks
  moto with an in-process ``GetFunction``; moto's ``Invoke`` does not check existence).
- A crash of an execution's process (:meth:`LocalLambdaRuntime.crash`, used by the fault
  injector of :mod:`siblings.local.windows`): the attempt fails with ``Runtime.ExitError``, its
  container is thrown away and the event retried like any failed attempt.

Reserved concurrency (``PutFunctionConcurrency`` on the server, or ``register(...,
reserved_concurrency=N)``) caps how many executions of a function run at once. Lambda treats the
two invocation types differently over the cap, and so does this runtime: a synchronous invoke is
refused with ``429 TooManyRequestsException`` (reason
``ReservedFunctionConcurrentInvocationLimitExceeded``); an asynchronous invoke is still accepted
(``202``) and its event waits in the function's internal queue until a slot frees, as Lambda
keeps throttled async events and retries them (for up to six hours). ``stats().throttled``
counts the events that had to wait. A 429 on an async ``Invoke`` in AWS is an API *rate* limit;
that is the quota layer's and the fault injector's job, not this package's.

Each finished attempt publishes ``Invocations``/``Duration``/``Errors`` to ``AWS/Lambda`` through
a :class:`~siblings.local.metrics.MetricsPublisher` (batched ``PutMetricData``), and the true
number of running executions is recorded over time (:meth:`LocalLambdaRuntime.timeline`).

Each concurrent execution runs in its own "container": a handler built by the registration's
``factory`` on a cold start (as Lambda runs a module's top level once per sandbox) and reused
by later executions once idle, so per-container state such as an in-process cache behaves as
it does on Lambda. The init phase does not count against the timeout or in ``Duration``.

Handlers run as threads of this process. A handler that overruns its deadline is recorded as
timed out and retried, but its thread cannot be killed and runs on unobserved (Lambda would
freeze it); handlers that honour ``get_remaining_time_in_millis`` never hit this.

Modules: :mod:`~.service` (:class:`LocalLambdaRuntime`), :mod:`~.invoke_api` (the HTTP side),
:mod:`~.scheduler` (queue, capacity, retries, counts), :mod:`~.sandbox` (containers, one
attempt's run), :mod:`~.records` (what is recorded), :mod:`~.wsgi` (WSGI helpers).
"""

from siblings.local.runtime.invoke_api import (
    ASYNC_PAYLOAD_LIMIT,
    SYNC_PAYLOAD_LIMIT,
    parse_function_ref,
)
from siblings.local.runtime.records import (
    Attempt,
    AttemptOutcome,
    Handler,
    InvocationRecord,
    InvocationStatus,
    RuntimeStats,
)
from siblings.local.runtime.service import LocalLambdaRuntime

__all__ = [
    "ASYNC_PAYLOAD_LIMIT",
    "SYNC_PAYLOAD_LIMIT",
    "Attempt",
    "AttemptOutcome",
    "Handler",
    "InvocationRecord",
    "InvocationStatus",
    "LocalLambdaRuntime",
    "RuntimeStats",
    "parse_function_ref",
]
