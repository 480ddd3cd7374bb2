"""HTTP routes of the Files and Batch APIs, and the ``/mock`` controls for batches.

Thin on purpose: each handler checks the key, reads its parameters and calls the
`BatchEngine` on the state, which holds all the behaviour. The shapes are the ones the
``openai`` SDK parses (``FileObject``, ``FileDeleted``, ``Batch``, cursor pages).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ._batches import BatchApiError, check_metadata
from ._errors import NO_API_KEY, error_body
from ._files import FILE_PURPOSES, StoredFile
from ._handlers import json_response
from ._keys import api_key_from
from ._multipart import MultipartError, boundary_of, parse_form
from ._state import MockState

__all__ = ["batch_routes"]

_Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def batch_routes(state: MockState) -> list[Route]:
    """The ``/v1/files``, ``/v1/batches`` and ``/mock/batch*`` routes over ``state``."""
    engine = state.batches

    def headers() -> dict[str, str]:
        return {"x-request-id": state.new_id("req_"), "openai-version": "2020-10-01"}

    def api(handler: Callable[[Request], Coroutine[Any, Any, Any]]) -> _Handler:
        """Authenticate, run ``handler`` and turn its result or error into a response."""

        async def endpoint(request: Request) -> Response:
            key = api_key_from(request.headers.get("authorization"), request.headers.get("api-key"))
            if key is None:
                return json_response(
                    401, error_body(NO_API_KEY, "invalid_request_error"), headers()
                )
            try:
                result = await handler(request)
            except BatchApiError as exc:
                return json_response(exc.status, exc.body(), headers())
            if isinstance(result, Response):
                return result
            return json_response(200, result, headers())

        return endpoint

    async def upload(request: Request) -> dict[str, Any]:
        try:
            boundary = boundary_of(request.headers.get("content-type", ""))
            form = parse_form(await request.body(), boundary)
        except MultipartError as exc:
            raise BatchApiError(400, f"Invalid file upload: {exc}.") from None
        purpose_part = form.get("purpose")
        purpose = purpose_part.data.decode("utf-8", "replace") if purpose_part else ""
        if purpose not in FILE_PURPOSES:
            raise BatchApiError(
                400,
                f"Invalid value for 'purpose': expected one of {sorted(FILE_PURPOSES)}, "
                f"got {purpose!r}.",
                "purpose",
                "invalid_value",
            )
        upload = form.get("file")
        if upload is None:
            raise BatchApiError(
                400, "Missing required parameter: 'file'.", "file", "missing_required_parameter"
            )
        stored = engine.upload(upload.data, filename=upload.filename or "file", purpose=purpose)
        return stored.as_dict()

    async def list_files(request: Request) -> dict[str, Any]:
        params = request.query_params
        limit = _limit(params.get("limit"), default=10_000, maximum=10_000)
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BatchApiError(
                400, "Invalid value for 'order': expected 'asc' or 'desc'.", "order"
            )
        engine.advance()
        files = engine.files.listing(purpose=params.get("purpose"), newest_first=order == "desc")
        page, has_more = _page(files, params.get("after"), limit, lambda f: f.id)
        return _list_body([f.as_dict() for f in page], has_more)

    async def get_file(request: Request) -> dict[str, Any]:
        return _stored(request).as_dict()

    async def file_content(request: Request) -> Response:
        stored = _stored(request)
        return StreamingResponse(
            stored.chunks(),
            media_type="application/octet-stream",
            headers={**headers(), "content-length": str(len(stored.data))},
        )

    async def delete_file(request: Request) -> dict[str, Any]:
        file_id = request.path_params["file_id"]
        if not engine.files.delete(file_id):
            raise _no_file(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    def _stored(request: Request) -> StoredFile:
        file_id = request.path_params["file_id"]
        engine.advance()
        stored = engine.files.get(file_id)
        if stored is None:
            raise _no_file(file_id)
        return stored

    async def create_batch(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        input_file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        window = body.get("completion_window")
        for name, value in (
            ("input_file_id", input_file_id),
            ("endpoint", endpoint),
            ("completion_window", window),
        ):
            if not isinstance(value, str):
                raise BatchApiError(
                    400,
                    f"Missing required parameter: '{name}'.",
                    name,
                    "missing_required_parameter",
                )
        assert isinstance(input_file_id, str) and isinstance(endpoint, str)
        assert isinstance(window, str)
        identity = state.identities.get(
            api_key_from(request.headers.get("authorization"), request.headers.get("api-key"))
            or "",
            request.headers.get("openai-organization"),
            request.headers.get("openai-project"),
        )
        return engine.create(
            input_file_id,
            endpoint,
            window,
            check_metadata(body.get("metadata")),
            organization=identity.organization,
        )

    async def get_batch(request: Request) -> dict[str, Any]:
        return engine.retrieve(request.path_params["batch_id"])

    async def list_batches(request: Request) -> dict[str, Any]:
        params = request.query_params
        limit = _limit(params.get("limit"), default=20, maximum=100)
        return engine.listing(after=params.get("after"), limit=limit)

    async def cancel_batch(request: Request) -> dict[str, Any]:
        return engine.cancel(request.path_params["batch_id"])

    async def mock_batches(request: Request) -> Response:
        return json_response(200, engine.inspect(), {})

    async def get_batch_config(request: Request) -> Response:
        return json_response(200, engine.config.as_dict(), {})

    async def post_batch_config(request: Request) -> Response:
        try:
            changes = await _json_object(request)
            engine.configure(engine.config.updated(changes))
        except BatchApiError as exc:
            return json_response(exc.status, exc.body(), {})
        except (TypeError, ValueError) as exc:
            return json_response(400, error_body(str(exc), "invalid_request_error"), {})
        return json_response(200, engine.config.as_dict(), {})

    return [
        Route("/v1/files", api(upload), methods=["POST"]),
        Route("/v1/files", api(list_files), methods=["GET"]),
        Route("/v1/files/{file_id}", api(get_file), methods=["GET"]),
        Route("/v1/files/{file_id}", api(delete_file), methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", api(file_content), methods=["GET"]),
        Route("/v1/batches", api(create_batch), methods=["POST"]),
        Route("/v1/batches", api(list_batches), methods=["GET"]),
        Route("/v1/batches/{batch_id}", api(get_batch), methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", api(cancel_batch), methods=["POST"]),
        Route("/mock/batches", mock_batches, methods=["GET"]),
        Route("/mock/batch-config", get_batch_config, methods=["GET"]),
        Route("/mock/batch-config", post_batch_config, methods=["POST"]),
    ]


def _no_file(file_id: str) -> BatchApiError:
    return BatchApiError(404, f"No such File object: {file_id}", "id")


def _limit(raw: str | None, *, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= maximum:
        raise BatchApiError(
            400,
            f"Invalid 'limit': expected an integer between 1 and {maximum}, got {raw!r}.",
            "limit",
            "invalid_value",
        )
    return limit


def _page(
    items: list[Any], after: str | None, limit: int, id_of: Callable[[Any], str]
) -> tuple[list[Any], bool]:
    """The ``limit`` items after the one with id ``after``, and whether more follow."""
    if after is not None:
        ids = [id_of(item) for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


def _list_body(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BatchApiError(400, "The request body must be a JSON object.")
    return body
