"""The Starlette application: routes for the API, the Azure paths and the ``/mock`` controls.

Routing is all this module does; the request pipeline lives in ``_handlers.py`` and the
state in ``_state.py``. The app runs unchanged in-process (``httpx2.ASGITransport``) and
under uvicorn (``_server.py``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._batch_routes import batch_routes
from ._config import MockConfig
from ._errors import NO_API_KEY, error_body, invalid_url_message
from ._handlers import handle_api, json_response
from ._keys import api_key_from
from ._render import model_object
from ._state import Clock, MockState, Sleep

__all__ = ["create_app"]


def create_app(
    config: MockConfig, *, clock: Clock | None = None, sleep: Sleep | None = None
) -> Starlette:
    """A mock OpenAI API as an ASGI app; its `MockState` is ``app.state.mock``.

    ``clock`` (default `time.monotonic`) drives the buckets, the stats timeline and the
    request log; ``sleep`` (default `anyio.sleep`) is how latency is waited out. Tests
    inject a fake clock and a sleep that advances it, so nothing waits for real.

    Example::

        app = create_app(MockConfig(latency=LatencyModel.instant()))
        http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
        client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://mock/v1",
                                    http_client=http_client, max_retries=0)
    """
    state = MockState(config, clock=clock or time.monotonic, sleep=sleep or anyio.sleep)

    def api(endpoint: str) -> Any:
        async def endpoint_handler(request: Request) -> Response:
            return await handle_api(state, request, endpoint)

        return endpoint_handler

    def azure(endpoint: str) -> Any:
        async def deployment_handler(request: Request) -> Response:
            return await handle_api(
                state, request, endpoint, deployment=request.path_params["deployment"]
            )

        return deployment_handler

    async def list_models(request: Request) -> Response:
        denied = _unauthenticated(request, state)
        if denied is not None:
            return denied
        data = [model_object(model) for model in config.models]
        return json_response(200, {"object": "list", "data": data}, _plain_headers(state))

    async def get_model(request: Request) -> Response:
        denied = _unauthenticated(request, state)
        if denied is not None:
            return denied
        model = request.path_params["model"]
        if model in config.models:
            return json_response(200, model_object(model), _plain_headers(state))
        message = f"The model '{model}' does not exist"
        body = error_body(message, "invalid_request_error", "model", "model_not_found")
        return json_response(404, body, _plain_headers(state))

    async def get_stats(request: Request) -> Response:
        return json_response(200, state.stats(), {})

    async def post_reset(request: Request) -> Response:
        options = await _optional_json(request)
        refill = bool(options.get("buckets", False)) if isinstance(options, dict) else False
        forget = bool(options.get("batches", True)) if isinstance(options, dict) else True
        state.reset(buckets=refill, batches=forget)
        return json_response(200, {"reset": True, "buckets": refill}, {})

    async def get_limits(request: Request) -> Response:
        return json_response(200, state.limits(), {})

    async def post_limits(request: Request) -> Response:
        changes = await _optional_json(request)
        if not isinstance(changes, dict):
            return json_response(
                400, error_body("expected a JSON object of limits", "invalid_request_error"), {}
            )
        model = changes.pop("model", None)
        if model is not None and not isinstance(model, str):
            return json_response(
                400, error_body("'model' must be a string", "invalid_request_error"), {}
            )
        base = (
            state.limits_for(state.group_of(model)) if model is not None else state.default_limits
        )
        try:
            limits = base.updated(changes)
        except (TypeError, ValueError) as exc:
            return json_response(400, error_body(str(exc), "invalid_request_error"), {})
        state.set_limits(limits, model=model)
        return json_response(200, {"model": model, "limits": limits.as_dict()}, {})

    async def not_found(request: Request, exc: Exception) -> Response:
        message = invalid_url_message(request.method, request.url.path)
        return json_response(
            404, error_body(message, "invalid_request_error"), _plain_headers(state)
        )

    routes = [
        Route("/v1/chat/completions", api("chat.completions"), methods=["POST"]),
        Route("/v1/responses", api("responses"), methods=["POST"]),
        Route("/v1/embeddings", api("embeddings"), methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route(
            "/openai/deployments/{deployment}/chat/completions",
            azure("chat.completions"),
            methods=["POST"],
        ),
        Route("/openai/deployments/{deployment}/embeddings", azure("embeddings"), methods=["POST"]),
        Route("/openai/deployments/{deployment}/responses", azure("responses"), methods=["POST"]),
        # The SDK's AsyncAzureOpenAI sends the Responses API here, with or without
        # azure_deployment (responses are not a per-deployment route); the model is the body's.
        Route("/openai/responses", api("responses"), methods=["POST"]),
        Route("/openai/v1/chat/completions", api("chat.completions"), methods=["POST"]),
        Route("/openai/v1/responses", api("responses"), methods=["POST"]),
        Route("/openai/v1/embeddings", api("embeddings"), methods=["POST"]),
        Route("/mock/stats", get_stats, methods=["GET"]),
        Route("/mock/reset", post_reset, methods=["POST"]),
        Route("/mock/limits", get_limits, methods=["GET"]),
        Route("/mock/limits", post_limits, methods=["POST"]),
        *batch_routes(state),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.mock = state
    return app


def _plain_headers(state: MockState) -> dict[str, str]:
    return {"x-request-id": state.new_id("req_"), "openai-version": "2020-10-01"}


def _unauthenticated(request: Request, state: MockState) -> Response | None:
    key = api_key_from(request.headers.get("authorization"), request.headers.get("api-key"))
    if key is None:
        return json_response(
            401, error_body(NO_API_KEY, "invalid_request_error"), _plain_headers(state)
        )
    return None


async def _optional_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return None
