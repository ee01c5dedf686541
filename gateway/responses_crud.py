"""Stored responses over HTTP: `GET`/`DELETE /v1/responses/{id}`,
`GET /v1/responses/{id}/input_items`, and `POST /v1/responses/compact`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import check_route_allowed
from gateway.errors import GatewayError, InvalidRequest
from gateway.request_io import json_response, read_json_body
from gateway.responses_state import as_items, history, namespace, open_compactions, with_id
from gateway.translate import new_id
from gateway.translate.common import now

if TYPE_CHECKING:
    from gateway.context import RequestContext
    from gateway.state import GatewayState as Gateway


def _parts(request: Request) -> tuple[Gateway, RequestContext, str]:
    return (
        request.app.state.gateway,
        request.scope["state"]["ctx"],
        namespace(request.scope["state"]["ctx"]),
    )


def _missing(response_id: str) -> GatewayError:
    return GatewayError(
        404, f"No response with id {response_id!r} is stored for this API key "
        "(never stored, `store: false`, deleted, or expired).",
        code="response_not_found",
    )  # fmt: skip


def _store(gateway: Gateway) -> Any:
    if gateway.responses_store is None:
        raise GatewayError(404, "This gateway stores no responses (responses.store: off).",
                           code="response_not_found")  # fmt: skip
    return gateway.responses_store


async def get_response(request: Request) -> Response:
    gateway, _, ns = _parts(request)
    response_id = request.path_params["response_id"]
    record = await _store(gateway).get(ns, response_id)
    if record is None:
        raise _missing(response_id)
    return json_response(record.response)


async def stored_response(request: Request) -> Response:
    """`GET` or `DELETE /v1/responses/{id}` (one route: its 405 lists both methods)."""
    if request.method == "DELETE":
        return await delete_response(request)
    return await get_response(request)


async def delete_response(request: Request) -> Response:
    gateway, _, ns = _parts(request)
    response_id = request.path_params["response_id"]
    if not await _store(gateway).delete(ns, response_id):
        raise _missing(response_id)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


def _listed(item: Any) -> Any:
    """An input item as OpenAI lists it: message text as content parts (the stored item
    keeps the client's own form, which is what a continuation sends the engine)."""
    if isinstance(item, dict) and isinstance(item.get("content"), str) and "role" in item:
        kind = "output_text" if item["role"] == "assistant" else "input_text"
        part: dict[str, Any] = {"type": kind, "text": item["content"]}
        if kind == "output_text":
            part["annotations"] = []
        return {"type": "message", **item, "content": [part]}
    return item


def _int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequest(f"`{name}` must be an integer from {low} to {high}", param=name)
    return int(raw)


async def list_input_items(request: Request) -> Response:
    """OpenAI's list shape: `limit` (1-100, 20), `order` (desc|asc), `after` (an item id)."""
    gateway, _, ns = _parts(request)
    response_id = request.path_params["response_id"]
    query = request.query_params
    limit = _int_param(query.get("limit"), "limit", 20, 1, 100)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be 'asc' or 'desc'", param="order")
    chain = await _store(gateway).chain(ns, response_id)
    if chain is None:
        raise _missing(response_id)
    items = chain.input_items()
    if order == "desc":
        items = items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"`after`: no item {after!r} in this list", param="after")
        items = items[ids.index(after) + 1 :]
    page = [_listed(item) for item in items[:limit]]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        }
    )


async def compact(request: Request) -> Response:
    """The context (`previous_response_id`'s chain, then `input`) sealed into one
    `compaction` item (gateway/compaction.py): nothing is summarised, nothing is lost."""
    gateway, ctx, ns = _parts(request)
    body = await read_json_body(request, gateway.config.server.max_body_bytes)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string",
                             param="model")  # fmt: skip
    gateway.router.driver_for(model)  # the 404 of an unknown model
    check_route_allowed(ctx, model)
    inp = body.get("input")
    if inp is not None and not isinstance(inp, (str, list)):
        raise InvalidRequest("'input' must be a string or a list of items", param="input")
    for name in ("instructions", "prompt_cache_key"):  # accepted; nothing to do with them
        if body.get(name) is not None and not isinstance(body[name], str):
            raise InvalidRequest(f"'{name}' must be a string", param=name)
    items: list[Any] = []
    if body.get("previous_response_id") is not None:
        items, _ = await history(gateway, ns, body["previous_response_id"], None)
    items += open_compactions(gateway, as_items(inp), ns)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest(f"input[{index}] must be an object", param=f"input[{index}]")
    sealed = gateway.sealer.seal([with_id(item) for item in items], ns)
    usage = {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }
    return json_response(
        {
            "id": new_id("resp"),
            "object": "response.compaction",
            "created_at": now(),
            "output": [{"id": new_id("cmp"), "type": "compaction", "encrypted_content": sealed}],
            "usage": usage,
        }
    )
