"""One API request from authentication to the last stream frame.

The order follows the real service: authenticate, parse, check billing, take a place
among the calls in flight, admit against every bucket at once, then (if admitted) maybe
fail on purpose, then generate. Headers are a snapshot of the buckets when the response
starts, as OpenAI's are, so a stream's headers do not see the tokens that follow them.
How each outcome is *worded* (headers, statuses, bodies) is the profile's `Dialect`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ._buckets import (
    INPUT_TPM,
    OUTPUT_TPM,
    PROJECT_TPM,
    RPD,
    RPM,
    RPS,
    TPD,
    TPM,
    TPS,
    BucketSet,
    Charge,
    Enforcer,
)
from ._config import FaultKind, MockLimits
from ._dialect import Who
from ._errors import (
    BAD_JSON,
    NO_API_KEY,
    BadRequest,
    error_body,
    gateway_html,
    invalid_key_message,
)
from ._faults import DropConnection, damage_headers, drop_connection
from ._generate import embedding_vectors, generate_choices
from ._headers import Denial
from ._held import HeldResponse, pause_unless_gone
from ._inflight import Hold, InFlightRefusal
from ._keys import Identity, api_key_from
from ._latency import Timing, timing
from ._render import (
    chat_completion,
    chat_usage,
    dumps,
    embedding_response,
    response_object,
    response_output,
    response_usage,
)
from ._replies import Choice, Choices
from ._requests import ParsedRequest, parse_chat, parse_embeddings, parse_responses
from ._state import MockState
from ._streams import StreamPlan, chat_frames, paced, response_frames
from ._text import request_rng

__all__ = ["handle_api", "json_response"]

_PARSERS: dict[str, Callable[[dict[str, Any]], ParsedRequest]] = {
    "chat.completions": parse_chat,
    "responses": parse_responses,
    "embeddings": parse_embeddings,
}
_AZURE_OPERATIONS = {
    "chat.completions": "ChatCompletions_Create",
    "responses": "Responses_Create",
    "embeddings": "Embeddings_Create",
}
_REASONS = {
    RPM: "requests_per_min",
    RPD: "requests_per_day",
    TPM: "tokens_per_min",
    TPD: "tokens_per_day",
    PROJECT_TPM: "project_tokens_per_min",
    RPS: "requests_per_sec",
    TPS: "tokens_per_sec",
    INPUT_TPM: "input_tokens_per_min",
    OUTPUT_TPM: "output_tokens_per_min",
}
# A server that enforces nothing (vLLM) still counts its calls in flight.
_UNLIMITED = MockLimits()
_KEEPALIVE_COMMENT = b": keep-alive\n\n"
_BLANK_LINE = b"\n"
_ERROR_FAULTS = frozenset(
    {
        FaultKind.SERVER_ERROR,
        FaultKind.BAD_GATEWAY,
        FaultKind.OVERLOADED,
        FaultKind.SLOW_DOWN,
        FaultKind.GATEWAY_TIMEOUT,
        FaultKind.CONNECTION_RESET,
    }
)
_HEADER_FAULTS = frozenset({FaultKind.MISSING_HEADERS, FaultKind.GARBLED_HEADERS})
_STREAM_FAILURES = frozenset({FaultKind.STREAM_CUT, FaultKind.STREAM_ERROR})
_AZURE_DEFAULT_VERSION = "2024-10-21"


def json_response(status: int, body: Any, headers: dict[str, str]) -> Response:
    """A JSON response with the given headers (compact, UTF-8)."""
    return Response(dumps(body), status_code=status, headers=headers, media_type="application/json")


async def handle_api(
    state: MockState, request: Request, endpoint: str, *, deployment: str | None = None
) -> Response:
    """Serve one call to ``/v1/chat/completions``, ``/v1/responses`` or ``/v1/embeddings``."""
    started = state.clock()
    openai_headers = state.config.profile.openai_headers
    headers = {"x-request-id": state.new_id("req_")}
    if openai_headers:
        headers["openai-version"] = "2020-10-01"
    key = api_key_from(request.headers.get("authorization"), request.headers.get("api-key"))
    if key is None:
        state.recorder.invalid("missing_api_key")
        return json_response(401, error_body(NO_API_KEY, "invalid_request_error"), headers)
    identity = state.identities.get(
        key, request.headers.get("openai-organization"), request.headers.get("openai-project")
    )
    if identity.config is None and state.config.require_known_keys:
        state.recorder.invalid("invalid_api_key")
        body = error_body(
            invalid_key_message(identity.label), "invalid_request_error", None, "invalid_api_key"
        )
        return json_response(401, body, headers)
    raw = await request.body()
    try:
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nesting too deep to decode
            raise BadRequest(BAD_JSON) from None
        if not isinstance(payload, dict):
            raise BadRequest(BAD_JSON)
        if deployment is not None:
            payload["model"] = deployment
        parsed = _PARSERS[endpoint](payload)
    except BadRequest as exc:
        state.recorder.invalid("bad_request")
        return json_response(400, exc.body(), headers)
    if openai_headers:
        headers["openai-organization"] = identity.organization
        headers["openai-project"] = identity.project
    call = _Call(state, request, identity, parsed, raw, headers, started)
    return await call.run()


class _Call:
    """The admitted-or-not life of one parsed API request."""

    def __init__(
        self,
        state: MockState,
        request: Request,
        identity: Identity,
        parsed: ParsedRequest,
        raw: bytes,
        headers: dict[str, str],
        started: float,
    ) -> None:
        self.state = state
        self.config = state.config
        self.dialect = state.dialect
        self.request = request
        self.identity = identity
        self.parsed = parsed
        self.raw = raw
        self.headers = headers
        self.started = started
        self.retry_count = request.headers.get("x-stainless-retry-count")
        self.fault: FaultKind | None = None
        self.number = 0
        self.charge = Charge(0)
        #: Whether the call's place in flight is limited, so a disconnect must free it.
        self.watch_disconnect = False

    # -- admission --------------------------------------------------------------------

    async def run(self) -> Response:
        state, config, parsed, identity = self.state, self.config, self.parsed, self.identity
        self.number = state.next_number()
        now = state.clock()
        group = state.group_of(parsed.model)
        buckets = state.enforcer.bucket_set(identity.principal, identity.project, group, now)
        self.fault = fault = state.faults.pick(self.number, stream=parsed.stream)
        asked = parsed.charge_request(config.output.default_max_tokens)
        profile = config.profile
        charge = Charge(
            config.charge_rule(asked),
            asked.estimated_prompt_tokens,
            asked.reserved_output_tokens,
            output_later=profile.output_charge == "usage",
        )

        out_of_quota = identity.config is not None and identity.config.insufficient_quota
        if out_of_quota or fault is FaultKind.INSUFFICIENT_QUOTA:
            if config.charge_failed_requests:
                state.enforcer.charge_failure(buckets, now)
            return self._deny(self.dialect.quota(), buckets, "insufficient_quota")

        limits = state.limits_for(group) if profile.enforce_limits else _UNLIMITED
        entered = state.in_flight.enter(
            identity.principal, group, limits, charge.tokens, now, label=identity.principal_label
        )
        if isinstance(entered, InFlightRefusal):
            if config.charge_failed_requests:
                state.enforcer.charge_failure(buckets, now)
            denial = self.dialect.in_flight(entered, self._who())
            return self._deny(denial, buckets, entered.reason)
        self.watch_disconnect = limits.limits_in_flight
        try:
            response = await self._admitted(buckets, charge, group, entered, now)
        except BaseException:
            entered.release()
            raise
        return HeldResponse(response, entered)

    def _who(self) -> Who:
        return Who(
            model=self.parsed.model,
            organization=self.identity.organization,
            project=self.identity.project,
            operation=_AZURE_OPERATIONS[self.parsed.endpoint],
            api_version=self.request.query_params.get("api-version", _AZURE_DEFAULT_VERSION),
        )

    async def _admitted(
        self, buckets: BucketSet, charge: Charge, group: str, hold: Hold, now: float
    ) -> Response:
        """Admit against the buckets (or refuse), then answer: the call is in flight."""
        state, config, parsed, identity = self.state, self.config, self.parsed, self.identity
        fault = self.fault
        profile = config.profile
        if profile.enforce_limits:
            admission = state.enforcer.admit(buckets, charge, now, soft_limit=profile.soft_limit)
            if not admission.admitted:
                hold.release()
                if config.charge_failed_requests:
                    state.enforcer.charge_failure(buckets, now)
                if admission.too_large is not None:
                    denial = self.dialect.too_large(admission.too_large, self._who())
                    return self._deny(denial, buckets, "request_too_large")
                assert admission.refusal is not None
                denial = self.dialect.rate_limited(
                    buckets, admission.refusal, admission.retry_after, self._who(), time.time()
                )
                return self._deny(denial, buckets, _REASONS[admission.refusal.name])
            self.charge = charge
            state.note_peaks(identity, group, buckets)
        if fault in _ERROR_FAULTS:
            assert fault is not None
            # The request slot stays spent (failed requests count); no tokens were generated.
            Enforcer.refund(buckets, self.charge, now)
            self.charge = Charge(0)
            self._record(now, _fault_status(fault), "failed", fault=fault)
            return self._fail(fault, buckets, now)

        self._record(
            now,
            200,
            "failed" if fault in _STREAM_FAILURES else "accepted",
            fault=fault,
            charged=self.charge.tokens,
        )
        rng = request_rng(config.seed, parsed.endpoint.encode(), self.raw)
        prompt_tokens = parsed.prompt_tokens()
        delays = timing(config.latency, prompt_tokens, rng)
        if profile.queue_slots is not None:
            # vLLM queues: the more calls in flight, the longer each one takes.
            crowd = state.in_flight.count(identity.principal, group) / profile.queue_slots
            if crowd > 1:
                delays = Timing(delays.first_token * crowd, delays.per_token * crowd)
        if fault is FaultKind.SLOW_FIRST_BYTE:
            delays = Timing(
                delays.first_token + config.faults.slow_first_byte_seconds, delays.per_token
            )
        if parsed.endpoint == "embeddings":
            hold.expect_end(now + delays.first_token)
            return await self._embeddings(buckets, prompt_tokens, delays)
        choices = self._generate(rng)
        hold.expect_end(now + delays.total(max(choice.tokens for choice in choices)))
        if parsed.stream:
            return await self._stream(buckets, prompt_tokens, delays, choices)
        if parsed.endpoint == "chat.completions":
            return await self._chat(buckets, prompt_tokens, delays, choices)
        return await self._response(buckets, prompt_tokens, delays, choices)

    def _generate(self, rng: random.Random) -> Choices:
        return generate_choices(self.parsed, self.config.output, rng)

    # -- responses ------------------------------------------------------------------

    def _response_headers(
        self, buckets: BucketSet, now: float, processing: float
    ) -> dict[str, str]:
        buckets.refill(now)
        headers = dict(self.headers)
        if self.config.profile.openai_headers:
            headers["openai-processing-ms"] = str(max(0, round(processing * 1000)))
        headers.update(self.dialect.headers(buckets, time.time()))
        return headers

    def _damage(self, headers: dict[str, str]) -> dict[str, str]:
        if self.fault in _HEADER_FAULTS:
            assert self.fault is not None
            damage_headers(headers, self.fault, self.state.faults.garble_rng(self.number))
        return headers

    def _deny(self, denial: Denial, buckets: BucketSet, reason: str) -> Response:
        now = self.state.clock()
        noted = (
            self.fault
            if self.fault in _HEADER_FAULTS or self.fault is FaultKind.INSUFFICIENT_QUOTA
            else None
        )
        self._record(now, denial.status, "rejected", reason, fault=noted)
        headers = self._response_headers(buckets, now, now - self.started)
        headers.update(denial.headers)
        return json_response(denial.status, denial.body, self._damage(headers))

    def _fail(self, fault: FaultKind, buckets: BucketSet, now: float) -> Response:
        if fault is FaultKind.CONNECTION_RESET:
            return DropConnection()
        if fault in (FaultKind.BAD_GATEWAY, FaultKind.GATEWAY_TIMEOUT):
            # A CDN page: none of the API's own headers.
            status = _fault_status(fault)
            return Response(gateway_html(status), status_code=status, media_type="text/html")
        headers = self._response_headers(buckets, now, now - self.started)
        if fault is FaultKind.SERVER_ERROR:
            status, body = self.dialect.server_error()
        elif fault is FaultKind.OVERLOADED:
            status, body = self.dialect.overloaded()
        else:
            status, body = self.dialect.slow_down()
        return json_response(status, body, headers)

    def _record(
        self,
        now: float,
        status: int,
        outcome: str,
        reason: str | None = None,
        *,
        fault: FaultKind | None = None,
        charged: int = 0,
    ) -> None:
        self.state.recorder.record(
            now=now,
            key=self.identity.label,
            model=self.parsed.model,
            endpoint=self.parsed.endpoint,
            status=status,
            outcome=outcome,
            reason=reason,
            fault=fault.value if fault is not None else None,
            retry_count=self.retry_count,
            charged=charged,
        )

    def _finish(self, buckets: BucketSet, prompt: int, output: int) -> None:
        """Account for what the request really consumed, once it is known."""
        now = self.state.clock()
        charge = self.charge
        enforcer = self.state.enforcer
        if self.config.settle_to_usage:
            enforcer.refund_tokens(buckets, charge.tokens - (prompt + output), now)
        if charge.output_later:
            enforcer.credit(buckets, "output_tokens", -output, now)
        elif self.config.profile.output_charge == "settle" and charge.output_tokens:
            enforcer.credit(buckets, "output_tokens", charge.output_tokens - output, now)
        self.state.recorder.usage(
            now=now, key=self.identity.label, model=self.parsed.model, used=prompt + output
        )

    async def _wait(self, seconds: float) -> bool:
        """Wait out the model's time; False when the client went away meanwhile."""
        if not self.watch_disconnect:
            await self.state.pause(seconds)
            return True
        return await pause_unless_gone(self.state.pause, seconds, self.request.receive)

    def _keeps_alive(self, seconds: float) -> bool:
        interval = self.config.profile.keepalive_seconds
        return interval is not None and seconds > interval

    async def _beats(self, seconds: float, beat: bytes) -> AsyncIterator[bytes]:
        """Wait ``seconds``, sending ``beat`` every keep-alive interval meanwhile."""
        interval = self.config.profile.keepalive_seconds
        assert interval is not None
        while seconds > interval:
            await self.state.pause(interval)
            seconds -= interval
            yield beat
        await self.state.pause(seconds)

    def _plain(
        self, buckets: BucketSet, wait: float, body: Callable[[], Any]
    ) -> Awaitable[Response]:
        """A JSON answer ready after ``wait``: sent then, or (with keep-alives) started now,
        blank lines while the model "thinks", then the body."""
        if self._keeps_alive(wait):
            return self._kept_alive(buckets, wait, body)
        return self._after(buckets, wait, body)

    async def _after(self, buckets: BucketSet, wait: float, body: Callable[[], Any]) -> Response:
        if not await self._wait(wait):
            self._finish(buckets, self.parsed.prompt_tokens(), 0)
            return Response(status_code=499)  # nobody is listening any more
        content = body()
        headers = self._response_headers(buckets, self.state.clock(), wait)
        return json_response(200, content, self._damage(headers))

    async def _kept_alive(
        self, buckets: BucketSet, wait: float, body: Callable[[], Any]
    ) -> Response:
        headers = self._damage(self._response_headers(buckets, self.state.clock(), 0.0))

        async def send() -> AsyncIterator[bytes]:
            async for beat in self._beats(wait, _BLANK_LINE):
                yield beat
            yield dumps(body())

        return StreamingResponse(send(), headers=headers, media_type="application/json")

    async def _chat(
        self, buckets: BucketSet, prompt: int, delays: Timing, choices: Choices
    ) -> Response:
        longest = max(choice.tokens for choice in choices)

        def body() -> Any:
            completion = sum(choice.tokens for choice in choices)
            self._finish(buckets, prompt, completion)
            return chat_completion(
                id_=self.state.new_id("chatcmpl-", 24),
                created=int(time.time()),
                model=self.parsed.model,
                choices=choices,
                usage=chat_usage(prompt, completion),
            )

        return await self._plain(buckets, delays.total(longest), body)

    async def _response(
        self, buckets: BucketSet, prompt: int, delays: Timing, choices: Choices
    ) -> Response:
        choice = choices[0]

        def body() -> Any:
            self._finish(buckets, prompt, choice.tokens)
            incomplete = choice.finish == "length"
            status = "incomplete" if incomplete else "completed"
            output = response_output(self._item_id(choice), choice, status)
            return response_object(
                id_=self.state.new_id("resp_", 32),
                created=int(time.time()),
                model=self.parsed.model,
                status=status,
                output=output,
                usage=response_usage(prompt, choice.tokens),
                max_output_tokens=self.parsed.max_output,
                instructions=self.parsed.instructions,
                incomplete=incomplete,
                echo=self.parsed.reply.echo,
            )

        return await self._plain(buckets, delays.total(choice.tokens), body)

    def _item_id(self, choice: Choice) -> str:
        """A Responses output item's id: ``fc_`` for a function call, ``msg_`` for text."""
        return self.state.new_id("fc_" if choice.tool_calls else "msg_", 32)

    async def _embeddings(self, buckets: BucketSet, prompt: int, delays: Timing) -> Response:
        def body() -> Any:
            self._finish(buckets, prompt, 0)
            vectors = embedding_vectors(self.parsed, self.config.output, self.config.seed)
            return embedding_response(self.parsed.model, vectors, prompt)

        return await self._after(buckets, delays.first_token, body)

    # -- streams --------------------------------------------------------------------

    async def _stream(
        self, buckets: BucketSet, prompt: int, delays: Timing, choices: Choices
    ) -> Response:
        # With keep-alives the headers go at once and comments fill the wait; otherwise
        # the headers wait for the first token, as OpenAI's do.
        waiting = self._keeps_alive(delays.first_token)
        if not waiting and not await self._wait(delays.first_token):
            self._finish(buckets, prompt, 0)
            return Response(status_code=499)
        shown = 0.0 if waiting else delays.first_token
        headers = self._damage(self._response_headers(buckets, self.state.clock(), shown))
        headers["cache-control"] = "no-cache, must-revalidate"
        fault, parsed, state = self.fault, self.parsed, self.state
        longest = max(choice.tokens for choice in choices)
        failing = fault in _STREAM_FAILURES
        plan = StreamPlan(
            model=parsed.model,
            created=int(time.time()),
            prompt_tokens=prompt,
            choices=choices,
            cut_at=int(longest * self.config.faults.stream_cut_fraction) if failing else -1,
            error=fault is FaultKind.STREAM_ERROR,
            echo=parsed.reply.echo,
        )
        emitted = [0]
        steps = (
            chat_frames(
                plan,
                id_=state.new_id("chatcmpl-", 24),
                include_usage=parsed.include_usage,
                emitted=emitted,
            )
            if parsed.endpoint == "chat.completions"
            else response_frames(
                plan,
                response_id=state.new_id("resp_", 32),
                item_id=self._item_id(choices[0]),
                max_output_tokens=parsed.max_output,
                instructions=parsed.instructions,
                emitted=emitted,
            )
        )
        first = delays.first_token if waiting else 0.0
        body = self._send(steps, buckets, prompt, delays, emitted, first)
        return StreamingResponse(body, headers=headers, media_type="text/event-stream")

    async def _send(
        self,
        steps: Iterator[list[bytes]],
        buckets: BucketSet,
        prompt: int,
        delays: Timing,
        emitted: list[int],
        first: float,
    ) -> AsyncIterator[bytes]:
        """Send the stream at the model's pace, then account for what was really sent.

        ``first`` is the wait before the first token still to come (with keep-alives,
        which fill it with ``: keep-alive`` comments).
        """
        keepalive = self.fault is FaultKind.KEEPALIVE
        try:
            if first > 0:
                async for beat in self._beats(first, _KEEPALIVE_COMMENT):
                    yield beat
            async for chunk in paced(
                steps, per_token=delays.per_token, pause=self.state.pause, keepalive=keepalive
            ):
                yield chunk
            if self.fault is FaultKind.STREAM_CUT:
                await drop_connection(self.request.scope)
        finally:
            self._finish(buckets, prompt, emitted[0])


def _fault_status(fault: FaultKind) -> int:
    return {
        FaultKind.SERVER_ERROR: 500,
        FaultKind.BAD_GATEWAY: 502,
        FaultKind.OVERLOADED: 503,
        FaultKind.SLOW_DOWN: 503,
        FaultKind.GATEWAY_TIMEOUT: 504,
    }.get(fault, 0)
