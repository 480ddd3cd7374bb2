"""Calls in flight as a server limit: counted while a call runs, given back however it ends.

In process the tests run in trio's virtual time (the mock's clock is trio's), so calls
really overlap; the last tests use a real loopback socket, because a client that goes
away is something only a connection can show. What is asserted is measured from the
client's side (when each admitted call started and ended) and the server's counters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
import trio
from starlette.applications import Starlette

from ratelimit_llm._classify import ErrorKind, classify_error
from ratelimit_llm.mock import (
    FaultKind,
    FaultPlan,
    FaultRule,
    LatencyModel,
    MockConfig,
    MockLimits,
    OutputModel,
    Profile,
    create_app,
    serve,
)

KEY = "sk-test-concurrencyconcurrency01"
OTHER = "sk-test-concurrencyconcurrency02"
# Half a second to the first token, then 8-40 tokens at 40/s, jittered: calls overlap.
LATENCY = LatencyModel(ttft=0.5, per_prompt_token=0.0, tokens_per_second=40.0, jitter=0.3)


def app_of(limits: MockLimits, **changes: Any) -> Starlette:
    values: dict[str, Any] = {"latency": LATENCY, "seed": 11}
    values.update(changes)
    return create_app(MockConfig(limits=limits, **values), clock=trio.current_time)


def body(*, model: str = "gpt-4o-mini", stream: bool = False) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Hello, world!"}],
        "max_tokens": 40,
    }
    if stream:
        payload["stream"] = True
    return payload


class Client:
    """Raw calls to the app, each one's status and (for admitted ones) its interval."""

    def __init__(self, app: Starlette) -> None:
        self.http = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://mock.test"
        )
        self.admitted: list[tuple[float, float]] = []
        self.statuses: list[int] = []

    async def call(self, *, key: str = KEY, **options: Any) -> httpx2.Response:
        began = trio.current_time()
        response = await self.http.post(
            "/v1/chat/completions", json=body(**options), headers={"authorization": f"Bearer {key}"}
        )
        self.statuses.append(response.status_code)
        if response.status_code == 200:
            self.admitted.append((began, trio.current_time()))
        return response

    async def aclose(self) -> None:
        await self.http.aclose()


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (one ending as another starts: not both)."""
    events = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def in_flight(app: Starlette) -> dict[str, Any]:
    snapshot: dict[str, Any] = app.state.mock.stats()["in_flight"]
    return snapshot


@pytest.mark.anyio
async def test_never_more_than_the_limit_in_flight() -> None:
    app = app_of(MockLimits(concurrency=4))
    client = Client(app)
    # 40 calls: a burst of 20 at once, then one every 0.1 s.
    async with trio.open_nursery() as nursery:
        for index in range(40):
            nursery.start_soon(client.call)
            if index >= 20:
                await trio.sleep(0.1)
    await client.aclose()
    assert len(client.statuses) == 40
    assert set(client.statuses) == {200, 429}
    assert most_at_once(client.admitted) == 4
    seen = app.state.mock.stats()
    refused = client.statuses.count(429)
    assert seen["rejected_by_reason"] == {"concurrency": refused}
    assert seen["accepted"] == 40 - refused
    assert in_flight(app)["now"] == {}
    assert list(in_flight(app)["peak"].values()) == [4]


@pytest.mark.anyio
async def test_the_limit_is_per_key_and_per_model_group() -> None:
    app = app_of(
        MockLimits(concurrency=2), shared_limits={"family": ("gpt-4o", "gpt-4o-2024-08-06")}
    )
    client = Client(app)
    lanes = [
        (KEY, "gpt-4o-mini"),
        (OTHER, "gpt-4o-mini"),
        (KEY, "gpt-4o"),
        (KEY, "gpt-4o-2024-08-06"),  # the same group as gpt-4o: no place left there
    ]

    async def one(key: str, model: str) -> None:
        await client.call(key=key, model=model)

    async with trio.open_nursery() as nursery:
        for key, model in lanes:
            for _ in range(2):
                nursery.start_soon(one, key, model)
            await trio.sleep(0.01)
    await client.aclose()
    assert sorted(client.statuses) == [200] * 6 + [429] * 2
    assert sorted(in_flight(app)["peak"].values()) == [2, 2, 2]


@pytest.mark.anyio
async def test_cancelled_calls_give_their_places_back() -> None:
    app = app_of(MockLimits(concurrency=3))
    client = Client(app)
    with trio.move_on_after(0.2):  # all three are still waiting for their first token
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(client.call)
    assert client.statuses == []
    assert in_flight(app)["now"] == {}
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(client.call)
    await client.aclose()
    assert client.statuses == [200, 200, 200]


@pytest.mark.anyio
async def test_a_stream_holds_its_place_until_its_last_frame() -> None:
    app = app_of(MockLimits(concurrency=1), output=OutputModel(min_tokens=40))
    client = Client(app)
    during: list[int] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: client.call(stream=True))
        # 0.5 s to the first token, then 40 tokens at 40/s: at 1.2 s it is mid-stream.
        await trio.sleep(1.2)
        during.append((await client.call()).status_code)
    assert client.statuses == [429, 200]
    assert during == [429]
    assert in_flight(app)["now"] == {}
    await client.call()
    await client.aclose()
    assert client.statuses[-1] == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    "fault",
    [
        FaultKind.STREAM_CUT,
        FaultKind.STREAM_ERROR,
        FaultKind.SERVER_ERROR,
        FaultKind.OVERLOADED,
        FaultKind.CONNECTION_RESET,
        FaultKind.BAD_GATEWAY,
    ],
)
async def test_failed_and_cut_calls_give_their_places_back(fault: FaultKind) -> None:
    plan = FaultPlan((FaultRule(fault, requests=(1, 2)),))
    app = app_of(MockLimits(concurrency=2), faults=plan)
    client = Client(app)
    for _ in range(2):
        with contextlib.suppress(httpx2.TransportError, ConnectionResetError):
            await client.call(stream=True)
    assert in_flight(app)["now"] == {}
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(lambda: client.call(stream=True))
    await client.aclose()
    assert client.statuses[-2:] == [200, 200]


@pytest.mark.anyio
async def test_refused_calls_do_not_hold_a_place() -> None:
    # A call refused by a bucket after it was counted in flight leaves at once.
    app = app_of(MockLimits(concurrency=2, rpm=1))
    client = Client(app)
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(client.call)
    await client.aclose()
    assert sorted(client.statuses) == [200, 429, 429]
    assert app.state.mock.stats()["rejected_by_reason"] == {"requests_per_min": 2}


@pytest.mark.anyio
async def test_the_refusal_reads_as_concurrency_in_every_dialect() -> None:
    for profile in (Profile.openai(), Profile.groq(), Profile.gemini(), Profile.anthropic()):
        app = app_of(MockLimits(concurrency=1), profile=profile)
        client = Client(app)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.call)
            await trio.sleep(0.1)
            refused = await client.call()
        await client.aclose()
        assert refused.status_code == 429, profile.name
        info = classify_error(429, refused.headers, refused.content)
        assert info is not None and info.kind is ErrorKind.CONCURRENCY, profile.name
        assert (info.limit, info.used) == (1.0, 2.0)


@pytest.mark.anyio
async def test_reset_keeps_the_calls_in_flight_and_restarts_the_peaks() -> None:
    app = app_of(MockLimits(concurrency=2))
    client = Client(app)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.call)
        nursery.start_soon(client.call)
        await trio.sleep(0.1)
        await client.http.post("/mock/reset", json={"buckets": True})
        assert list(in_flight(app)["now"].values()) == [2]
        assert (await client.call()).status_code == 429  # still two in flight
    assert list(in_flight(app)["peak"].values()) == [2]
    await client.http.post("/mock/reset")
    assert in_flight(app) == {"now": {}, "peak": {}}
    await client.aclose()


def test_limits_are_checked_at_the_door() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        MockLimits(concurrency=0)
    with pytest.raises(TypeError, match="in_flight_tokens"):
        MockLimits(in_flight_tokens="8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="queue_slots"):
        Profile.vllm(queue_slots=0)
    assert MockLimits(concurrency=3).limits_in_flight
    assert not MockLimits(rpm=3).limits_in_flight


# -- over a socket: the client goes away ---------------------------------------------------


async def hang(seconds: float) -> None:
    """A sleep that never ends on its own: only a disconnect (a cancellation) ends it."""
    await asyncio.Event().wait()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (at most 5 s, polling) for the server to get somewhere."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server never got to: {what}")


@pytest.mark.asyncio
async def test_a_client_that_goes_away_frees_its_place() -> None:
    config = MockConfig(limits=MockLimits(concurrency=1), latency=LATENCY)
    async with (
        serve(config, sleep=hang) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        state = server.state
        call = asyncio.ensure_future(
            http.post("/chat/completions", json=body(), headers={"authorization": f"Bearer {KEY}"})
        )
        await until(lambda: bool(state.in_flight.snapshot()["now"]), "the call in flight")
        call.cancel()  # the client closes the connection mid-call
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await until(lambda: not state.in_flight.snapshot()["now"], "the place given back")


@pytest.mark.asyncio
async def test_a_stream_whose_client_goes_away_frees_its_place() -> None:
    # The first frame goes at once, then the stream "thinks" forever.
    latency = LatencyModel(ttft=0.0, per_prompt_token=0.0, tokens_per_second=40.0, jitter=0.0)
    config = MockConfig(limits=MockLimits(concurrency=1), latency=latency)
    async with (
        serve(config, sleep=hang) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        state = server.state
        async with http.stream(
            "POST",
            "/chat/completions",
            json=body(stream=True),
            headers={"authorization": f"Bearer {KEY}"},
        ) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes():
                assert chunk.startswith(b"data: ")
                break
            assert state.in_flight.snapshot()["now"]
        # Leaving the block closes the half-read response: the connection goes.
        await until(lambda: not state.in_flight.snapshot()["now"], "the place given back")
