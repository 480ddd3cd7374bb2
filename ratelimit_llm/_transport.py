"""`RateLimitedTransport`: the limiter, placed where every SDK call passes.

The openai SDK (and most OpenAI-compatible SDKs) send each HTTP request through an
httpx transport; ``AsyncOpenAI(http_client=...)`` is its documented extension point.
Wrapping the transport means chat, responses, embeddings, files and streaming all pass
through the limiter, and so does every retry. The transport:

1. reads the JSON body and estimates its cost the way the server will;
2. asks the strategy what to do (wait, which credential);
3. acquires the cost from the bucket of that credential and model (FIFO);
4. sends, then reads the ``x-ratelimit-*`` headers into the bucket;
5. settles the reservation against the real ``usage`` (for a stream, when it ends);
6. on an error, asks the strategy whether and when to try again.

openai 3.x is built on ``httpx2``, older versions and other SDKs on ``httpx``. The two
transport interfaces have the same shape, so one class serves both: it builds its
responses with the module of the request it was given.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio

from ._classify import RETRYABLE_KINDS, ErrorInfo, classify_error, classify_error_payload
from ._credentials import Credential
from ._estimate import CostEstimator, cost_from_usage, usage_from_response
from ._headers import parse_rate_limit_headers
from ._interface import Limiter, Reservation
from ._learner import Learner
from ._line import current_lane
from ._pool import LimiterPool
from ._providers import Provider, provider_from_url, to_provider
from ._sse import UsageWatcher
from ._strategy import Attempt, Decision, Strategy, retry_kind
from ._telemetry import ESTIMATED_FROM_STREAM, Event, RouteStatistics, Telemetry
from ._trips import QuickestTrip
from ._types import Cost
from ._validate import check_choice, check_instance, check_int, check_number

__all__ = ["RateLimitedTransport"]

_log = logging.getLogger("ratelimit_llm.transport")

# However the strategies are set, a call is never tried more often than this.
_HARD_ATTEMPT_LIMIT = 100
# A failed call's body is read to classify it; more than this is not an error message.
_MAX_ERROR_BODY = 1024 * 1024
_NO_KEY = "<no key>"


def check_options(
    *,
    strategy: Any,
    estimator: Any,
    acquire_timeout: Any,
    telemetry: Any,
    clock: Any,
    snapshot_at: Any,
    max_in_flight: Any,
    learner: Any,
    provider: Any,
) -> dict[str, Any]:
    """The transport's options, checked once: `TypeError` for a wrong type, `ValueError`
    for a wrong value, each naming the parameter. `wrap` and `http_client` use it too."""
    if strategy is not None:
        check_instance("strategy", strategy, Strategy, "a Strategy (AdaptiveBackoff(), ...)")
    if estimator is not None:
        check_instance("estimator", estimator, CostEstimator, "a CostEstimator")
    if telemetry is not None:
        check_instance("telemetry", telemetry, Telemetry, "a Telemetry")
    if learner is not None:
        check_instance("learner", learner, Learner, "a Learner")
    if acquire_timeout is not None:
        acquire_timeout = check_number("acquire_timeout", acquire_timeout, low=0.0)
    if max_in_flight is not None:
        check_int("max_in_flight", max_in_flight, low=1)
    if clock is not None and not callable(clock):
        raise TypeError(f"clock must be a callable returning seconds, got {type(clock).__name__}")
    check_choice("snapshot_at", snapshot_at, ("response", "admission"))
    return {"acquire_timeout": acquire_timeout, "provider": to_provider(provider)}


class _Transport(Protocol):
    async def handle_async_request(self, request: Any) -> Any: ...

    async def aclose(self) -> None: ...


if TYPE_CHECKING:
    from httpx2 import AsyncBaseTransport as _AsyncTransportBase
else:
    try:  # an httpx2 transport where httpx2 is installed (openai 3.x) ...
        from httpx2 import AsyncBaseTransport as _AsyncTransportBase
    except ImportError:  # ... and of the same shape where it is not (openai 1.x, 2.x)
        _AsyncTransportBase = object


class RateLimitedTransport(_AsyncTransportBase):
    """An async httpx / httpx2 transport that rate-limits what passes through it.

    It has the shape of both libraries' ``AsyncBaseTransport`` (``handle_async_request``,
    ``aclose``, ``async with``) and needs neither installed, so it serves openai 1.x and
    2.x (on ``httpx``) as well as 3.x (on ``httpx2``).

    Usually built by `ratelimit_llm.wrap`; build it yourself to pass your own client::

        transport = RateLimitedTransport(
            httpx2.AsyncHTTPTransport(), limits=Limits(rpm=500, tpm=200_000)
        )
        client = AsyncOpenAI(
            http_client=httpx2.AsyncClient(transport=transport), max_retries=0
        )

    :param inner: the transport that really sends (``httpx2.AsyncHTTPTransport()`` or
        ``httpx.AsyncHTTPTransport()``, or a mock).
    :param pool: the buckets (`LimiterPool`); or give ``limits`` (and ``shared``)
        to have one made.
    :param strategy: what to decide before a send and after an answer; the default,
        `AdaptiveBackoff`, retries what waiting can cure (and follows any strategy
        that does not decide about retries itself).
    :param learner: what turns every answer into corrections of the buckets (headers,
        named waits, slow start, learned paces), whatever the strategy; see `Learner`.
    :param estimator: how a request's cost is estimated before it is sent.
    :param acquire_timeout: give up waiting for the bucket after this many seconds
        (`AcquireTimeoutError`); ``None`` waits as long as it takes.
    :param telemetry: where events and counters go.
    :param snapshot_at: when the server took the rate-limit numbers it sends:
        ``"response"`` (default: when it began to answer, so they already count every
        call it had admitted by then) or ``"admission"`` (when it admitted this call, so
        calls sent since are subtracted from its "remaining").
    :param provider: whose dialect the answers are in (`Provider` or its name, e.g.
        ``"together"``), when the base URL does not make it obvious; otherwise it is
        recognised from each request's host, and failing that from the headers.
    :param max_in_flight: at most this many calls waiting for their answer at once
        (``None``: no cap). Calls granted beyond it wait here, in order, instead of in
        the HTTP connection pool, whose queue costs time quadratic in its length.
    """

    def __init__(
        self,
        inner: _Transport,
        *,
        pool: LimiterPool | None = None,
        limits: Any = None,
        shared: dict[str, str] | None = None,
        strategy: Strategy | None = None,
        estimator: CostEstimator | None = None,
        acquire_timeout: float | None = None,
        telemetry: Telemetry | None = None,
        clock: Callable[[], float] | None = None,
        snapshot_at: Literal["response", "admission"] = "response",
        max_in_flight: int | None = None,
        learner: Learner | None = None,
        provider: Provider | str | None = None,
    ) -> None:
        checked = check_options(
            strategy=strategy,
            estimator=estimator,
            acquire_timeout=acquire_timeout,
            telemetry=telemetry,
            clock=clock,
            snapshot_at=snapshot_at,
            max_in_flight=max_in_flight,
            learner=learner,
            provider=provider,
        )
        if pool is None:
            if limits is None:
                raise TypeError("give either pool= or limits=")
            pool = LimiterPool(limits, shared=shared, clock=clock)
        elif limits is not None:
            raise TypeError("give pool= or limits=, not both")
        elif not isinstance(pool, LimiterPool):
            raise TypeError(f"pool must be a LimiterPool, got {type(pool).__name__}")
        from .strategies import AdaptiveBackoff

        if strategy is None:
            strategy = AdaptiveBackoff()
        elif not strategy.decides_retries:
            # Rate limits are retried whatever else is composed (KeyRotation alone, ...).
            strategy = strategy + AdaptiveBackoff()
        acquire_timeout = checked["acquire_timeout"]
        self.learner = learner or Learner()
        self.provider: Provider | None = checked["provider"]
        # Recognised from the host, once per host (None: let the headers tell).
        self._providers_by_host: dict[str, Provider | None] = {}
        self._inner = inner
        self.pool = pool
        self.strategy = strategy
        self.estimator = estimator or CostEstimator()
        self.acquire_timeout = acquire_timeout
        self.telemetry = telemetry or Telemetry()
        self.snapshot_at = snapshot_at
        self.max_in_flight = max_in_flight
        self._slots: anyio.Semaphore | None = None
        # The quickest recent round trip net of the server's time (see `_produced_at`).
        self._quickest_trip = QuickestTrip()
        self._clock = clock
        # The client's own credentials, by key, so each is redacted once.
        self._credentials: dict[str, Credential] = {}
        # Set by `SyncRateLimitedTransport`, whose sync streams end on the caller's thread:
        # how to run the end of a stream (its settle) on the loop that owns the buckets.
        self._run_in_loop: Callable[..., Any] | None = None

    # -- the transport interface ------------------------------------------------------

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` through the limiter; see the class docstring for the steps."""
        request, budget = _retry_budget(request)
        lane = request.headers.get(LANE_HEADER)
        if lane is not None:
            del request.headers[LANE_HEADER]
        body = _json_body(request)
        model = _model_of(request, body)
        cost = (
            self.estimator.estimate(body, endpoint=request.url.path)
            if body is not None
            else Cost(requests=1)
        )
        attempt = Attempt(
            model=model,
            endpoint=request.url.path,
            cost=cost,
            started=0.0,
            clock=self._now,
            pool=self.pool,
            telemetry=self.telemetry,
            default_credential=self._default_credential(request),
            creates=_creates_batch(request),
            max_attempts=budget,
            streams_without_usage=_streams_without_usage(body, request.url.path),
            provider=self._provider_for(request),
            lane=lane or current_lane(),
        )
        attempt.started = self._now()
        # Only a body we hold in memory can be sent again, or sent with another key.
        replayable = body is not None
        while True:
            response = await self._attempt(attempt, request, replayable)
            if response is not None:
                return response

    async def __aenter__(self) -> RateLimitedTransport:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the inner transport, after the buckets' last updates (a shared backend's).

        Closing the client closes this: with ``backend="redis://..."``, the settles still
        in flight reach Redis and the backend's connections are closed.
        """
        try:
            await self.pool.aclose()
        finally:
            await self._inner.aclose()

    def statistics(self) -> list[RouteStatistics]:
        """Per-(credential, model) counters; see `Telemetry.statistics`."""
        return self.telemetry.statistics()

    def limiters(self) -> dict[tuple[str, str | None], Limiter]:
        """The buckets made so far, by (credential name, model group)."""
        return dict(self.pool.items())

    # -- one attempt -----------------------------------------------------------------

    async def _attempt(self, attempt: Attempt, request: Any, replayable: bool) -> Any | None:
        """Make one attempt. Returns the response to hand back, or None to go again."""
        attempt.number += 1
        attempt.latency = None
        attempt.status = None
        attempt.error = None
        attempt.exception = None
        attempt.snapshot = None
        await self.strategy.before_send(attempt)
        if attempt.credential is not None and not replayable:
            # A streamed upload can't be re-addressed; it goes with the client's own key.
            attempt.credential = None
        credential = attempt.credential or attempt.default_credential
        key_name = credential.name if credential is not None else _NO_KEY
        limiter = attempt.limiter = self.pool.get(
            key_name, attempt.model, provider=attempt.provider
        )
        reservation = await limiter.acquire(
            attempt.cost, timeout=self.acquire_timeout, lane=attempt.lane
        )
        attempt.reservation = reservation
        self._emit(
            "granted", attempt, wait=reservation.waited, tokens_estimated=attempt.cost.tokens
        )
        outgoing = _readdress(request, attempt.credential) if attempt.credential else request
        slots = self._slots
        if slots is None and self.max_in_flight is not None:
            slots = self._slots = anyio.Semaphore(self.max_in_flight)
        if slots is not None:
            try:
                await slots.acquire()
            except BaseException:
                reservation.release()  # cancelled in line: never sent
                raise
        attempt.streaming = False
        state = limiter.in_flight()
        attempt.in_flight = None if state is None else state[0]
        try:
            sent_at = limiter.clock()
            reservation.sent()
            try:
                response = await self._inner.handle_async_request(outgoing)
            except Exception as error:
                return await self._after_exception(attempt, reservation, error, replayable)
            return await self._after_response(attempt, reservation, response, replayable, sent_at)
        finally:
            if not attempt.streaming:
                # This attempt is over (answered, failed, retried or cancelled): its place
                # among the calls in flight comes back. A stream's comes back at its end.
                reservation.finish()
            if slots is not None:
                slots.release()

    async def _after_exception(
        self, attempt: Attempt, reservation: Reservation, error: Exception, replayable: bool
    ) -> Any | None:
        if _never_sent(error) and not reservation.closed:
            reservation.release()
        # Otherwise the server may have admitted the call before the connection broke:
        # its estimate stays charged.
        attempt.exception = error
        self._emit("error", attempt, error_kind="connection", detail=type(error).__name__)
        decision = self.strategy.after_response(attempt)
        # A creation whose connection broke after sending may have happened.
        replayable = replayable and (not attempt.creates or _never_sent(error))
        if await self._retrying(attempt, decision, replayable):
            return None
        self._emit("gave_up", attempt, error_kind="connection", detail=type(error).__name__)
        if decision is not None and decision.error is not None:
            raise decision.error from error
        raise error

    async def _after_response(
        self,
        attempt: Attempt,
        reservation: Reservation,
        response: Any,
        replayable: bool,
        sent_at: float,
    ) -> Any | None:
        status = response.status_code
        attempt.status = status
        answered_at = attempt.limiter.clock() if attempt.limiter else sent_at
        attempt.latency = answered_at - sent_at
        provider = attempt.provider
        snapshot = parse_rate_limit_headers(response.headers, provider=provider)
        attempt.snapshot = snapshot
        self._emit("response", attempt, status=status)
        content_type = response.headers.get("content-type", "")
        usage: dict[str, Any] | None = None
        if 200 <= status < 300 and "json" in content_type:
            try:
                await _read(response)
            except Exception as error:
                # The body was cut or timed out after a 200: the SDK would retry it as a
                # connection error, and so does the retry policy here.
                await _close(response)
                attempt.status = None
                attempt.snapshot = None
                return await self._after_exception(attempt, reservation, error, replayable)
            usage = _usage_of(response.content)
        body = await _read_bounded(response) if status >= 400 else b""
        if status >= 400:
            attempt.error = classify_error(status, response.headers, body, provider=provider)
            if status < 500 and not reservation.closed:
                # A refused call was not run: its tokens were not spent, its request was
                # ("unsuccessful requests contribute to your per-minute limit").
                reservation.settle(Cost(requests=attempt.cost.requests))
        elif usage is not None:
            # Settle before the headers are taken in: the server's "remaining" already
            # counts this call at its admission charge, so a refund of unused output
            # must not lift the level above what the server reported.
            self._settle(attempt, reservation, usage)
        since = None
        if not snapshot.is_empty and self.snapshot_at == "response":
            since = self._produced_at(response, sent_at, answered_at)
        self.learner.learn(attempt, since=since)
        if status >= 400:
            return await self._after_error_status(attempt, response, replayable)
        # Successes reach the strategy too, so that it can keep its own accounts.
        self.strategy.after_response(attempt)
        if "text/event-stream" in content_type:
            return self._watch(attempt, response)
        return response

    def _watch(self, attempt: Attempt, response: Any) -> Any:
        """Pass ``response``'s stream through a usage watcher that settles at its end."""

        def ended(watcher: UsageWatcher) -> None:
            self._stream_ended(attempt, watcher)

        count = attempt.streams_without_usage
        attempt.streaming = True
        if _is_sync_stream(response) and self._run_in_loop is not None:
            run_in_loop = self._run_in_loop

            def ended_elsewhere(watcher: UsageWatcher) -> None:
                run_in_loop(ended, watcher)

            return _watch_stream(response, ended_elsewhere, count_text=count)
        return _watch_stream(response, ended, count_text=count)

    async def _after_error_status(
        self, attempt: Attempt, response: Any, replayable: bool
    ) -> Any | None:
        error = attempt.error
        kind = error.kind.value if error is not None else None
        metric = error.metric if error is not None else None
        self._emit("error", attempt, status=response.status_code, error_kind=kind, metric=metric)
        decision = self.strategy.after_response(attempt)
        # Only a 429 says for certain that a creation did not happen (a 5xx may not).
        replayable = replayable and (not attempt.creates or response.status_code == 429)
        if await self._retrying(attempt, decision, replayable):
            await _close(response)
            return None
        if _gave_up(attempt, error):
            self._emit("gave_up", attempt, status=response.status_code, error_kind=kind)
        if decision is not None and decision.error is not None:
            await _close(response)
            raise decision.error
        # The retries were ours: an SDK with max_retries > 0 (a framework that built its
        # own client on ours) must not retry this answer on top of them.
        response.headers["x-should-retry"] = "false"
        return response

    def _produced_at(self, response: Any, sent_at: float, answered_at: float) -> float:
        """The latest send that ``response``'s header snapshot can count, on our clock.

        What the call took beyond the server's own time (``openai-processing-ms``) was
        spent on the way there and back, and the quickest trips seen lately measure the
        network's part of it; the rest of a long trip was spent before the server saw
        the call (a connection pool's queue, a busy event loop). The server took the
        snapshot about half the quickest trip before the answer arrived; a call counts
        in it only if it had *arrived* by then, so only if it left at least the other
        half earlier: a whole quickest trip before the answer, never earlier than the
        call's own send. Calls sent after that (still on their way, or granted and not
        yet sent: `Reservation.sent`) are subtracted from the snapshot's "remaining".
        Without the header, the answer's arrival is used.
        """
        processing = response.headers.get("openai-processing-ms")
        try:
            server_seconds = float(processing) / 1000.0 if processing is not None else None
        except ValueError:
            server_seconds = None
        if server_seconds is None or not server_seconds >= 0:
            return answered_at
        trip = max(0.0, (answered_at - sent_at) - server_seconds)
        # The quickest of the last minute, this one included (see `QuickestTrip`): a busy
        # event loop makes trips long, the network's part of them is the shortest.
        return answered_at - self._quickest_trip.add(trip, answered_at)

    async def _retrying(
        self, attempt: Attempt, decision: Decision | None, replayable: bool
    ) -> bool:
        """Whether to go again; sleeps the decision's pause first."""
        if decision is None or decision.action != "retry" or not replayable:
            return False
        if attempt.max_attempts is not None and attempt.number >= attempt.max_attempts:
            return False  # the client's own budget (with_options(max_retries=...)) is spent
        if attempt.number >= _HARD_ATTEMPT_LIMIT:
            _log.warning("giving up after %d attempts", attempt.number)
            return False
        kind = retry_kind(attempt.error)
        attempt.retried[kind] = attempt.retried.get(kind, 0) + 1
        self._emit(
            "retry", attempt, wait=decision.delay, detail=decision.reason or None, retry_kind=kind
        )
        if decision.delay > 0:
            await anyio.sleep(decision.delay)
        return True

    # -- settling ----------------------------------------------------------------------

    def _settle(
        self, attempt: Attempt, reservation: Reservation, usage: dict[str, Any] | None
    ) -> None:
        actual = cost_from_usage(usage)
        if actual is None or reservation.closed:
            return
        reservation.settle(actual)
        self._emit(
            "settled",
            attempt,
            tokens_estimated=attempt.cost.tokens,
            tokens_actual=actual.tokens,
        )

    def _stream_ended(self, attempt: Attempt, watcher: UsageWatcher) -> None:
        reservation = attempt.reservation
        if reservation is not None:
            reservation.finish()
        if watcher.error is not None:
            info = classify_error_payload(watcher.error, provider=attempt.provider)
            self._emit(
                "error",
                attempt,
                status=attempt.status,
                error_kind=info.kind.value,
                metric=info.metric,
                detail="in-stream error",
            )
        if reservation is None:
            return
        if watcher.usage:
            self._settle(attempt, reservation, dict(watcher.usage))
        elif attempt.streams_without_usage and watcher.done and not reservation.closed:
            # No usage will ever come: settle from what streamed, counted as the estimate
            # counts (characters / 4), so that the output reservation is not kept whole.
            cost = attempt.cost
            prompt = cost.input_tokens if cost.input_tokens is not None else 0.0
            output = float(math.ceil(watcher.streamed_chars / 4))
            actual = Cost(
                requests=cost.requests,
                tokens=prompt + output,
                input_tokens=prompt,
                output_tokens=output,
            )
            reservation.settle(actual)
            self._emit(
                "settled",
                attempt,
                tokens_estimated=cost.tokens,
                tokens_actual=actual.tokens,
                detail=ESTIMATED_FROM_STREAM,
            )

    # -- helpers -----------------------------------------------------------------------

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return anyio.current_time()

    def _provider_for(self, request: Any) -> Provider | None:
        """The dialect of this request's answers: the one named, else the host's."""
        if self.provider is not None:
            return self.provider
        host = request.url.host
        if host not in self._providers_by_host:
            found = provider_from_url(str(request.url))
            self._providers_by_host[host] = None if found is Provider.UNKNOWN else found
        return self._providers_by_host[host]

    def _default_credential(self, request: Any) -> Credential | None:
        key = _key_of(request)
        if key is None:
            return None
        credential = self._credentials.get(key)
        if credential is None:
            credential = self._credentials[key] = Credential(key)
        return credential

    def _emit(self, kind: Any, attempt: Attempt, **fields: Any) -> None:
        self.telemetry.emit(
            Event(
                kind=kind,
                key=attempt.key_name,
                model=attempt.model,
                attempt=attempt.number,
                **fields,
            )
        )


# -- request and response plumbing ------------------------------------------------------


def _http_module(thing: Any) -> ModuleType:
    """``httpx2`` or ``httpx``: whichever library this request, response or client
    belongs to (subclasses, such as the SDK's own client wrappers, included)."""
    for cls in type(thing).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in ("httpx2", "httpx"):
            return sys.modules[root]
    raise TypeError(f"{type(thing).__name__} is neither an httpx2 nor an httpx object")


def _json_body(request: Any) -> dict[str, Any] | None:
    """The request's JSON body, if it has one held in memory."""
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        content = request.content
    except Exception:  # a streamed body that was not read: not ours to consume
        return None
    try:
        body = json.loads(content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _model_of(request: Any, body: dict[str, Any] | None) -> str | None:
    """The bucket's model: an Azure deployment in the path, else the body's ``model``.

    Azure meters the deployment (``/openai/deployments/{name}/chat/completions``), not
    the model the body names, which may be anything the deployment serves.
    """
    parts = request.url.path.split("/")
    if "deployments" in parts:
        index = parts.index("deployments")
        if index + 1 < len(parts) and parts[index + 1]:
            return str(parts[index + 1])
    if body is not None and isinstance(body.get("model"), str):
        return str(body["model"])
    return None


#: A per-call lane (``extra_headers={LANE_HEADER: "interactive"}``), read and never sent
#: on; the sync transport also uses it to carry a `lane` block's lane to its loop thread.
LANE_HEADER = "x-ratelimit-llm-lane"

#: A header `wrap`'s clients set on requests made through ``with_options(max_retries=N)``:
#: the retry budget of that call, which the transport reads and never sends on.
RETRIES_HEADER = "x-ratelimit-llm-max-retries"


def _retry_budget(request: Any) -> tuple[Any, int | None]:
    """The request without our budget header, and the attempts it may take (None: any).

    An SDK retry (``x-stainless-retry-count`` of 1 or more: a client built with its own
    ``max_retries`` on top of ours) gets one attempt: our retries ran for its first.
    """
    headers = request.headers
    budget: int | None = None
    raw = headers.get(RETRIES_HEADER)
    if raw is not None:
        del headers[RETRIES_HEADER]
        try:
            budget = max(0, int(raw)) + 1
        except ValueError:
            budget = None
    try:
        if int(headers.get("x-stainless-retry-count", "0")) > 0:
            budget = 1
    except ValueError:
        pass
    return request, budget


def _key_of(request: Any) -> str | None:
    headers = request.headers
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
        return key or None
    return headers.get("api-key") or None


def _readdress(request: Any, credential: Credential) -> Any:
    """A copy of ``request`` sent with ``credential`` (key, organisation, project, URL)."""
    module = _http_module(request)
    headers = request.headers.copy()
    if "api-key" in headers:
        headers["api-key"] = credential.api_key
    else:
        headers["authorization"] = f"Bearer {credential.api_key}"
    if credential.organization:
        headers["openai-organization"] = credential.organization
    if credential.project:
        headers["openai-project"] = credential.project
    url = request.url
    if credential.base_url:
        url = _rebase(url, credential.base_url, module)
        headers["host"] = url.netloc.decode("ascii")
    return module.Request(
        request.method, url, headers=headers, content=request.content, extensions=request.extensions
    )


def _rebase(url: Any, base_url: str, module: ModuleType) -> Any:
    """Send ``url``'s API path to another base URL (another region, another host)."""
    base = module.URL(base_url)
    path = url.path
    # Keep the part of the path after the API's own prefix (/v1, /openai, ...).
    for marker in ("/v1/", "/openai/"):
        if marker in path:
            path = path[path.index(marker) + len(marker) - 1 :]
            break
    joined = base.path.rstrip("/") + path
    return url.copy_with(scheme=base.scheme, host=base.host, port=base.port, path=joined)


def _streams_without_usage(body: dict[str, Any] | None, path: str) -> bool:
    """A chat or completions stream asked without ``include_usage``: it reports none."""
    if body is None or body.get("stream") is not True:
        return False
    if not path.rstrip("/").endswith(("/chat/completions", "/completions")):
        return False
    options = body.get("stream_options")
    return not (isinstance(options, dict) and options.get("include_usage") is True)


def _gave_up(attempt: Attempt, error: ErrorInfo | None) -> bool:
    """Whether handing this error back means giving up on something waiting could cure.

    A 400, a refused key or an exhausted quota on the first attempt is the answer, not a
    failure of the retry policy: it is not worth a warning.
    """
    if attempt.number > 1:
        return True
    return error is not None and error.kind in RETRYABLE_KINDS and error.retryable


def _creates_batch(request: Any) -> bool:
    """``POST .../batches``: sent twice, it could start the same Batch API job twice."""
    return bool(request.method == "POST" and request.url.path.rstrip("/").endswith("/batches"))


def _never_sent(error: BaseException) -> bool:
    """Connection failures before the request left: nothing reached the server."""
    name = type(error).__name__
    return name in ("ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol")


async def _read(response: Any) -> None:
    """Read a response's body into memory, whether its stream is async or sync.

    The sync transport (`SyncRateLimitedTransport`) runs this same pipeline on its event
    loop thread with a sync inner transport: its bodies are read in a worker thread.
    """
    if _is_sync_stream(response):
        await anyio.to_thread.run_sync(response.read)
    else:
        await response.aread()


async def _close(response: Any) -> None:
    if _is_sync_stream(response):
        await anyio.to_thread.run_sync(response.close)
    else:
        await response.aclose()


def _is_sync_stream(response: Any) -> bool:
    stream = getattr(response, "stream", None)
    return hasattr(stream, "__iter__") and not hasattr(stream, "__aiter__")


async def _read_bounded(response: Any) -> bytes:
    """The start of an error body. It is read whole (the SDK reads it again to build
    its exception), but only its first megabyte is looked at."""
    await _read(response)
    content: bytes = response.content
    return content[:_MAX_ERROR_BODY]


def _usage_of(content: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(content)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    usage = usage_from_response(payload)
    return dict(usage) if usage is not None else None


# One stream class per HTTP library and flavour: a response's stream must be an instance
# of that library's own AsyncByteStream (or SyncByteStream).
_STREAM_CLASSES: dict[tuple[str, bool], type] = {}


def _watch_stream(
    response: Any, on_end: Callable[[UsageWatcher], None], *, count_text: bool = False
) -> Any:
    """Hand back ``response`` with its body passed through a `UsageWatcher`."""
    if response.is_stream_consumed:
        # Already read into memory (mock transports do this): nothing left to stream.
        watcher = UsageWatcher(count_text=count_text)
        watcher.feed(response.content)
        watcher.close()
        on_end(watcher)
        return response
    module = _http_module(response)
    sync = _is_sync_stream(response)
    key = (module.__name__, sync)
    stream_class = _STREAM_CLASSES.get(key)
    if stream_class is None:
        stream_class = _STREAM_CLASSES[key] = _make_stream_class(module, sync=sync)
    response.stream = stream_class(response.stream, on_end, count_text)
    return response


def _make_stream_class(module: ModuleType, *, sync: bool) -> type:
    if sync:
        return _make_sync_stream_class(module)
    base: type = module.AsyncByteStream

    class WatchedStream(base):  # type: ignore[misc]
        """Passes the stream through chunk by chunk; settles when it ends or closes."""

        def __init__(
            self, inner: Any, on_end: Callable[[UsageWatcher], None], count_text: bool
        ) -> None:
            self._inner = inner
            self._on_end: Callable[[UsageWatcher], None] | None = on_end
            self._watcher = UsageWatcher(count_text=count_text)
            self._iterated = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            # Watched once: the SDK's clean-up may iterate an in-memory body again after
            # its reader stopped at "[DONE]" (before the first iteration's end).
            watching, self._iterated = not self._iterated, True
            async for chunk in self._inner:
                if watching:
                    self._watcher.feed(chunk)
                yield chunk
            self._end()

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._end()

        def _end(self) -> None:
            on_end, self._on_end = self._on_end, None
            if on_end is not None:
                self._watcher.close()
                on_end(self._watcher)

    WatchedStream.__name__ = WatchedStream.__qualname__ = f"WatchedStream[{module.__name__}]"
    return WatchedStream


def _make_sync_stream_class(module: ModuleType) -> type:
    base: type = module.SyncByteStream

    class WatchedSyncStream(base):  # type: ignore[misc]
        """The sync twin: iterated on the caller's thread, settled at its end."""

        def __init__(
            self, inner: Any, on_end: Callable[[UsageWatcher], None], count_text: bool
        ) -> None:
            self._inner = inner
            self._on_end: Callable[[UsageWatcher], None] | None = on_end
            self._watcher = UsageWatcher(count_text=count_text)
            self._iterated = False

        def __iter__(self) -> Iterator[bytes]:
            watching, self._iterated = not self._iterated, True
            for chunk in self._inner:
                if watching:
                    self._watcher.feed(chunk)
                yield chunk
            self._end()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._end()

        def _end(self) -> None:
            on_end, self._on_end = self._on_end, None
            if on_end is not None:
                self._watcher.close()
                on_end(self._watcher)

    WatchedSyncStream.__name__ = f"WatchedSyncStream[{module.__name__}]"
    WatchedSyncStream.__qualname__ = WatchedSyncStream.__name__
    return WatchedSyncStream
