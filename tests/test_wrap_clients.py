"""`wrap` keeps everything the user's HTTP client did; `http_client`; retries never doubled.

Each kept setting is shown by its effect on a real request: the header arrives, the
hook runs, the proxy (a recorder on 127.0.0.1) sees the call. Both HTTP libraries: openai
3.x's ``httpx2`` and the legacy ``httpx`` that 1.x/2.x and other SDKs use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, cast

import httpx
import httpx2
import openai
import pytest
from _answers import completion

import ratelimit_llm
from ratelimit_llm import AdaptiveBackoff, Limits, http_client, transport_of, wrap

pytestmark = pytest.mark.anyio

KEY = "sk-test-clientsclientsclients0001"
LIMITS = Limits(rpm=600, tpm=1_000_000, burst_seconds=60)
LIBRARIES = pytest.mark.parametrize("lib", [httpx2, httpx], ids=["httpx2", "httpx"])


class Recorder:
    """A scripted server for MockTransport: records every request it is sent."""

    def __init__(self, *answers: Callable[[Any], Any]) -> None:
        self.requests: list[Any] = []
        self._answers = list(answers)

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        module = httpx2 if type(request).__module__.startswith("httpx2") else httpx
        if not self._answers:
            return module.Response(200, json=completion())
        answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        return answer(module)


def ok(module: ModuleType) -> Any:
    return module.Response(200, json=completion())


def server_error(module: ModuleType) -> Any:
    body = {"error": {"message": "boom", "type": "server_error"}}
    return module.Response(500, json=body)


def sdk(lib: ModuleType, http: Any, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=KEY, base_url="http://api.test/v1", http_client=http, **kwargs
    )


async def say(client: Any) -> Any:
    return await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )


# -- a loopback HTTP proxy that records what passes ----------------------------------------


@asynccontextmanager
async def recording_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """A plain-HTTP forward proxy on 127.0.0.1 that answers every call itself."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            seen.append(lines[0])  # e.g. "POST http://api.test/v1/chat/completions HTTP/1.1"
            length = next(
                (
                    int(line.split(":", 1)[1])
                    for line in lines
                    if line.lower().startswith("content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            body = json.dumps(completion()).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


# -- every setting of the user's client is kept ---------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@LIBRARIES
async def test_an_explicit_proxy_is_honoured(lib: ModuleType) -> None:
    async with recording_proxy() as (proxy, seen):
        client = sdk(lib, lib.AsyncClient(proxy=proxy))
        await say(wrap(client, limits=LIMITS))
    assert seen == ["POST http://api.test/v1/chat/completions HTTP/1.1"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@LIBRARIES
async def test_an_environment_proxy_is_honoured_when_the_client_trusts_the_environment(
    lib: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with recording_proxy() as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        trusting = sdk(lib, lib.AsyncClient(trust_env=True))
        await say(wrap(trusting, limits=LIMITS))
        assert len(seen) == 1
        # A client that does not trust the environment does not start to.
        recorder = Recorder()
        distrusting = sdk(
            lib, lib.AsyncClient(trust_env=False, mounts={"http://": lib.MockTransport(recorder)})
        )
        await say(wrap(distrusting, limits=LIMITS))
        assert len(seen) == 1 and len(recorder.requests) == 1


@LIBRARIES
async def test_mounts_headers_cookies_auth_and_hooks_are_kept(lib: ModuleType) -> None:
    recorder = Recorder()
    hooked: list[str] = []

    async def on_request(request: Any) -> None:
        hooked.append(f"request {request.url.path}")

    async def on_response(response: Any) -> None:
        hooked.append(f"response {response.status_code}")

    class Signed(lib.Auth):  # type: ignore[misc, name-defined]
        def auth_flow(self, request: Any) -> Iterator[Any]:
            request.headers["x-signature"] = "signed"
            yield request

    user_http = lib.AsyncClient(
        mounts={"http://api.test": lib.MockTransport(recorder)},
        headers={"x-team": "labelling"},
        cookies={"session": "abc"},
        auth=Signed(),
        event_hooks={"request": [on_request], "response": [on_response]},
    )
    await say(wrap(sdk(lib, user_http), limits=LIMITS))
    (sent,) = recorder.requests
    assert sent.headers["x-team"] == "labelling"
    assert sent.headers["x-signature"] == "signed"
    assert "session=abc" in sent.headers["cookie"]
    assert hooked == ["request /v1/chat/completions", "response 200"]


@LIBRARIES
async def test_the_transport_and_its_tls_http2_and_pool_settings_are_the_users_own(
    lib: ModuleType,
) -> None:
    # Verification, client certificates, HTTP/2 and connection limits live in the
    # transport: requests must reach the very transport object the user configured.
    own = lib.AsyncHTTPTransport(verify=False, http2=False, limits=lib.Limits(max_connections=7))
    user_http = lib.AsyncClient(transport=own)
    wrapped = wrap(sdk(lib, user_http), limits=LIMITS)
    router: Any = cast(Any, transport_of(wrapped))._inner
    assert router._client._transport_for_url(lib.URL("http://api.test/v1/x")) is own
    assert transport_of(wrapped).max_in_flight == 7  # the pool's size caps calls in flight


@LIBRARIES
async def test_a_client_class_of_its_own_is_refused_by_name(lib: ModuleType) -> None:
    class SigningClient(lib.AsyncClient):  # type: ignore[misc, name-defined]
        async def send(self, request: Any, **kwargs: Any) -> Any:
            request.headers["x-sig"] = "1"
            return await super().send(request, **kwargs)

    with pytest.raises(TypeError, match="SigningClient"):
        wrap(sdk(lib, SigningClient()), limits=LIMITS)


# -- http_client(): the way in for frameworks ---------------------------------------------


async def test_http_client_builds_the_client_of_each_flavour() -> None:
    assert isinstance(http_client(limits=LIMITS), httpx2.AsyncClient)
    assert isinstance(http_client(limits=LIMITS, sync=True), httpx2.Client)
    assert isinstance(http_client(limits=LIMITS, library="httpx"), httpx.AsyncClient)
    assert isinstance(http_client(limits=LIMITS, library="httpx", sync=True), httpx.Client)
    with pytest.raises(ValueError, match="library"):
        http_client(limits=LIMITS, library="requests")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sync"):
        http_client(limits=LIMITS, base=httpx2.AsyncClient(), sync=True)


@LIBRARIES
async def test_http_client_with_a_base_keeps_its_settings(lib: ModuleType) -> None:
    recorder = Recorder()
    base = lib.AsyncClient(
        mounts={"http://api.test": lib.MockTransport(recorder)}, headers={"x-team": "evals"}
    )
    limited = http_client(limits=LIMITS, base=base)
    await say(
        openai.AsyncOpenAI(
            api_key=KEY, base_url="http://api.test/v1", http_client=limited, max_retries=0
        )
    )
    (sent,) = recorder.requests
    assert sent.headers["x-team"] == "evals"
    (stats,) = transport_of(limited).statistics()
    assert stats.requests == 1


@LIBRARIES
async def test_a_framework_client_with_its_own_retries_never_doubles_ours(lib: ModuleType) -> None:
    # A framework that builds AsyncOpenAI(max_retries=3) on our client: a failure our
    # retry policy gave up on is handed back with x-should-retry: false, and the SDK
    # does not send it again.
    recorder = Recorder(server_error)
    base = lib.AsyncClient(transport=lib.MockTransport(recorder))
    limited = http_client(
        limits=LIMITS, base=base, strategy=AdaptiveBackoff(max_attempts=2, base=0.01)
    )
    client = openai.AsyncOpenAI(
        api_key=KEY, base_url="http://api.test/v1", http_client=limited, max_retries=3
    )
    with pytest.raises(openai.InternalServerError):
        await say(client)
    assert len(recorder.requests) == 2  # ours; none of the SDK's three


# -- retries are never doubled ------------------------------------------------------------


@LIBRARIES
async def test_with_options_max_retries_becomes_the_limiters_budget(lib: ModuleType) -> None:
    recorder = Recorder(server_error)
    strategy = AdaptiveBackoff(max_attempts=10, base=0.01)
    wrapped = wrap(
        sdk(lib, lib.AsyncClient(transport=lib.MockTransport(recorder))),
        limits=LIMITS,
        strategy=strategy,
    )
    three = wrapped.with_options(max_retries=3)
    assert three.max_retries == 0  # the SDK's own stay off
    with pytest.raises(openai.InternalServerError):
        await say(three)
    assert len(recorder.requests) == 4  # the first and three retries, all ours
    recorder.requests.clear()
    with pytest.raises(openai.InternalServerError):
        await say(wrapped.with_options(max_retries=0))
    assert len(recorder.requests) == 1
    recorder.requests.clear()
    # A copy keeps the limiter and its budget passes on to further copies.
    with pytest.raises(openai.InternalServerError):
        await say(three.copy(timeout=5.0))
    assert len(recorder.requests) == 4
    with pytest.raises(TypeError, match="max_retries"):
        wrapped.with_options(max_retries=2.5)  # type: ignore[arg-type]


async def test_a_quota_error_is_sent_once_whatever_max_retries_says() -> None:
    def quota(module: ModuleType) -> Any:
        body = {
            "error": {
                "message": "You exceeded your current quota",
                "code": "insufficient_quota",
                "type": "insufficient_quota",
            }
        }
        return module.Response(429, json=body)

    recorder = Recorder(quota)
    wrapped = wrap(
        sdk(httpx2, httpx2.AsyncClient(transport=httpx2.MockTransport(recorder))), limits=LIMITS
    )
    with pytest.raises(openai.RateLimitError):
        await say(wrapped.with_options(max_retries=3))
    assert len(recorder.requests) == 1


async def test_a_copy_with_a_plain_http_client_is_refused() -> None:
    wrapped = wrap(
        sdk(httpx2, httpx2.AsyncClient(transport=httpx2.MockTransport(Recorder()))), limits=LIMITS
    )
    with pytest.raises(TypeError, match="around the limiter"):
        wrapped.copy(http_client=httpx2.AsyncClient())


# -- clear refusals -----------------------------------------------------------------------


async def test_wrapping_a_wrapped_client_is_a_clear_error() -> None:
    wrapped = wrap(sdk(httpx2, httpx2.AsyncClient()), limits=LIMITS)
    with pytest.raises(ValueError, match="already wrapped"):
        wrap(wrapped, limits=LIMITS)


async def test_an_instructor_patched_client_says_wrap_first_then_patch() -> None:
    # instructor.from_openai() returns an object of its own package, not an SDK client.
    Patched = type("AsyncInstructor", (), {"__module__": "instructor.client"})
    with pytest.raises(TypeError, match=r"Wrap first, then patch"):
        wrap(Patched(), limits=LIMITS)


@pytest.mark.parametrize("thing", [object(), "sk-a-key", httpx2.AsyncClient()])
async def test_what_is_not_an_sdk_client_is_refused(thing: object) -> None:
    with pytest.raises(TypeError, match="openai SDK"):
        wrap(thing, limits=LIMITS)


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"acquire_timeout": -1}, ValueError, "acquire_timeout"),
        ({"acquire_timeout": float("nan")}, ValueError, "acquire_timeout"),
        ({"acquire_timeout": "5"}, TypeError, "acquire_timeout"),
        ({"max_in_flight": 2.5}, TypeError, "max_in_flight"),
        ({"max_in_flight": 0}, ValueError, "max_in_flight"),
        ({"max_in_flight": "lots"}, ValueError, "max_in_flight"),
        ({"strategy": "adaptive"}, TypeError, "strategy"),
        ({"auto_start": 5}, TypeError, "auto_start"),
        ({"learner": object()}, TypeError, "learner"),
        ({"telemetry": []}, TypeError, "telemetry"),
        ({"snapshot_at": "later"}, ValueError, "snapshot_at"),
        ({"follow_server_limits": "yes"}, TypeError, "follow_server_limits"),
        ({"clock": 3.0}, TypeError, "clock"),
        ({"shared": {"gpt-4o": 4}}, TypeError, "shared"),
    ],
)
async def test_bad_options_fail_at_the_door_naming_the_parameter(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    client = sdk(httpx2, httpx2.AsyncClient())
    with pytest.raises(error, match=named):
        wrap(client, limits=LIMITS, **options)
    with pytest.raises(error, match=named):
        http_client(limits=LIMITS, **options)


# -- Azure: buckets follow the deployment -------------------------------------------------


async def test_azure_buckets_follow_the_deployment_whatever_the_body_names() -> None:
    recorder = Recorder()
    azure = openai.AsyncAzureOpenAI(
        api_key=KEY,
        api_version="2024-10-21",
        azure_endpoint="http://azure.test",
        azure_deployment="dep-A",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(recorder)),
    )
    wrapped = wrap(azure, limits=LIMITS)
    for model in ("gpt-4o", "gpt-4o-mini"):
        await wrapped.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    assert [model for _, model in transport_of(wrapped).limiters()] == ["dep-A"]


def test_the_public_helpers_are_exported() -> None:
    assert ratelimit_llm.http_client is http_client


# -- provider dialects: read in the provider's own terms ----------------------------------


async def test_together_per_second_limits_land_on_the_per_minute_bucket() -> None:
    # Together counts requests per *second*: 10/s is 600 a minute, enforced in slices.
    headers = {
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "9",
        "x-ratelimit-reset": "0.1",
        "x-tokenlimit-limit": "2000",
        "x-tokenlimit-remaining": "1990",
    }

    def together(request: Any) -> Any:
        return httpx2.Response(200, json=completion(), headers=headers)

    client = openai.AsyncOpenAI(
        api_key=KEY,
        base_url="https://api.together.xyz/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(together)),
    )
    # Told a minute's 1,200 requests: the server's own figure wins, in its own unit.
    wrapped = wrap(client, rpm=1_200, tpm=600_000)
    await say(wrapped)
    (limiter,) = transport_of(wrapped).limiters().values()
    stats = limiter.statistics()
    assert stats.limits == {"requests/min": 600, "tokens/min": 120_000}
    # One second's worth at once: the slice is the depth.
    assert stats.depths["requests/min"] == pytest.approx(10)
    assert transport_of(wrapped).provider is None  # recognised from the host, per request


async def test_a_named_provider_is_checked_at_the_door() -> None:
    client = sdk(httpx2, httpx2.AsyncClient())
    assert transport_of(wrap(client, limits=LIMITS, provider="together")).provider is not None
    with pytest.raises(ValueError, match="provider"):
        wrap(client, limits=LIMITS, provider="acme")
