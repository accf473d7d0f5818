"""What a sibling does with the event it received: claim its chain step, then its payload.

:func:`load_payload` is the one entry point (``SiblingsManager.load_payload`` and
``Invocation`` call it): it strips the reserved key, remembers the chain position for a later
``spawn_sibling`` in the same execution, claims the step (:mod:`siblings.runs`) and resolves an
S3 pointer (:mod:`siblings.pointer`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from estimator.estimator import DEFAULT_ESTIMATORS_MAX
from estimator.exceptions import AccountUnknown
from estimator.identity import at_home
from estimator.memory_store import MemoryStore
from estimator.store import DynamoStore
from estimator.validation import parse_function
from siblings.config import GuardErrorPolicy, SiblingsConfig
from siblings.context import InvocationInfo, context_attribute, read_context
from siblings.errors import StoreUnavailable
from siblings.metadata import METADATA_KEY, ChainMetadata, check_id, metadata_of, remember
from siblings.payload import default_s3_client
from siblings.pointer import check_pointer, read_pointer
from siblings.runs import RunClaims

if TYPE_CHECKING:
    from siblings.manager import SiblingsManager

log = logging.getLogger(__name__)


def load_payload(
    event: Any,
    lambda_context: Any = None,
    *,
    s3_client: Any = None,
    session: Any = None,
    config: SiblingsConfig | None = None,
    claims: RunClaims | None = None,
) -> dict[str, Any]:
    """Return the payload a sibling was spawned with: ``event`` minus the reserved key, with an
    S3 pointer resolved. Events that are not sibling events come back as a plain copy.

    Pass ``lambda_context`` so that a later ``spawn_sibling(lambda_context, ...)`` in the same
    execution knows the chain and generation (see :mod:`siblings.metadata`), and so that an
    offloaded payload can be checked against this function's own location
    (:mod:`siblings.pointer`). ``config`` gives ``payload_bucket``/``payload_prefix`` (default:
    the ``SIBLINGS_*`` environment); ``s3_client`` (or ``session``) reads the object.
    With the context, a sibling event's chain step is claimed for this execution first
    (:mod:`siblings.runs`; ``claims`` defaults to the shared table of ``config``).

    Raises :class:`DuplicateSibling` when another execution already runs this chain step, and
    its :class:`~siblings.defer.StepRelayed` when the event is a deferral's relay (decided by a
    manager of ``config``/``session``/``s3_client``, else the process's default manager; return
    from the handler: this one must do no work), :class:`~siblings.defer.RelayFailed` when that
    relay could not read a guard (let it fail: Lambda retries it);
    :class:`PayloadUnavailable` when an offloaded
    payload points anywhere but where this function writes it, cannot be read or does not match
    its digest; :class:`StoreUnavailable` (or :class:`~estimator.exceptions.AccountUnknown`)
    when the step cannot be claimed and ``on_guard_error`` is ``refuse``; ``ValueError`` when
    the reserved key or the context is malformed, or its ARN is of another account or Region
    than the clients' (a sibling event with a context needs its ``invoked_function_arn``);
    ``TypeError`` when ``event`` is not a JSON object.
    """
    if not isinstance(event, Mapping):
        raise TypeError(f"event must be a dict, got {type(event).__name__}")
    if "__siblings_deferred__" in event:  # siblings.defer.DEFERRED_KEY: a deferral fired
        return _relay_manager(config, session, s3_client).load_payload(event, lambda_context)
    metadata = metadata_of(event)
    request_id = _request_id(lambda_context)
    data = {k: v for k, v in event.items() if k != METADATA_KEY}
    if metadata is None:
        if request_id:
            remember(request_id, None)
        return data
    config = config or SiblingsConfig.from_env()
    # The step is claimed for the function the context names: a context that cannot say which
    # is refused before anything is read (TypeError/ValueError, like spawn_sibling's).
    info = read_context(lambda_context) if request_id else None
    raw = event[METADATA_KEY].get("payload")
    if raw is not None:  # read first: a payload that cannot be read leaves the step unclaimed
        pointer = check_pointer(
            raw, config=config, function_name=_reader_name(lambda_context), metadata=metadata
        )
        client = s3_client if s3_client is not None else default_s3_client(session, config)
        data = read_pointer(client, pointer)
    if info is not None and request_id:
        claims = claims or _default_claims(config, session)
        _claim_step(claims, info, session, metadata, request_id)
        remember(request_id, metadata)
    return data


def _request_id(lambda_context: Any) -> str | None:
    if lambda_context is None:
        return None
    request_id = context_attribute(lambda_context, "aws_request_id")
    if request_id is None:
        return None
    return check_id("lambda_context.aws_request_id", request_id)


def _claim_step(
    claims: RunClaims, info: InvocationInfo, session: Any, metadata: ChainMetadata, request_id: str
) -> None:
    """Claim the step for this execution of the function the context names, once its ARN is
    known to be of the clients' account and Region (``ValueError`` otherwise)."""
    try:
        ref = at_home(info.ref, claims.config, session, running=True, clock=claims.clock)
        claims.start(ref.scope, metadata, request_id)
    except (StoreUnavailable, AccountUnknown) as exc:
        if claims.config.on_guard_error is not GuardErrorPolicy.ALLOW:
            raise
        log.warning("chain step not claimed (on_guard_error=allow, running anyway): %s", exc)


_claims_lock = threading.Lock()
# Bounded like estimate_concurrency's own reuse: callers passing ever-new sessions or configs
# must not grow the process (the least recently used is dropped).
_claims: MutableMapping[tuple[Any, ...], RunClaims] = LRUCache(maxsize=DEFAULT_ESTIMATORS_MAX)


def _default_claims(config: SiblingsConfig, session: Any) -> RunClaims:
    """One :class:`RunClaims` (hence one table client and breaker) per table and session."""
    key = (id(session), *(value for name, value in config.as_overrides().items() if name != "extra"))
    with _claims_lock:
        claims = _claims.get(key)
        if claims is None:
            store = DynamoStore(config, session=session) if config.use_dynamodb else MemoryStore()
            claims = _claims[key] = RunClaims(store, config)
        return claims


_managers: MutableMapping[tuple[Any, ...], SiblingsManager] = LRUCache(maxsize=DEFAULT_ESTIMATORS_MAX)


def _relay_manager(config: SiblingsConfig | None, session: Any, s3_client: Any) -> SiblingsManager:
    """The manager that decides a relay: one of the caller's config and clients (one per
    config, session and client, so a warm container reuses its caches), else the default one."""
    from siblings.handler import default_manager
    from siblings.manager import SiblingsManager as Manager  # the manager imports this module

    if config is None and session is None and s3_client is None:
        return default_manager()
    config = config or SiblingsConfig.from_env()
    key = (id(session), id(s3_client), *(v for n, v in config.as_overrides().items() if n != "extra"))
    with _claims_lock:
        manager = _managers.get(key)
        if manager is None:
            manager = _managers[key] = Manager(config=config, session=session, s3_client=s3_client)
        return manager


def _reader_name(lambda_context: Any) -> str | None:
    """The name of the function reading the event: from its context, else Lambda's environment."""
    arn = context_attribute(lambda_context, "invoked_function_arn")
    if isinstance(arn, str):
        try:
            return parse_function(arn).name
        except ValueError:
            return None
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    try:
        return parse_function(name).name if name else None
    except ValueError:
        return None


