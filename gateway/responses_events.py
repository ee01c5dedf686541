"""A finished Response object as the event sequence a stream of it would have sent (pure).

WebSocket mode streams every turn, but the RL token bundle is a non-streaming field
(docs/rl.md): a WebSocket turn on the token path is therefore answered non-streaming and
its events are made from the final Response here, the bundle on the last item's
`response.output_item.done` and in the terminal response, as over HTTP.
"""

from __future__ import annotations

from typing import Any

from gateway.translate import TOKEN_FIELDS

_TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete"}


def _snapshot(item: dict[str, Any]) -> dict[str, Any]:
    """An item as `output_item.added` shows it: in progress, empty, no token fields."""
    out = {k: v for k, v in item.items() if k not in TOKEN_FIELDS}
    out["status"] = "in_progress"
    if item.get("type") in ("message", "reasoning"):
        out["content"] = []
    if item.get("type") == "function_call":
        out["arguments"] = ""
    return out


def _empty(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "output_text":
        return {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    if kind == "refusal":
        return {"type": "refusal", "refusal": ""}
    return {"type": kind, "text": ""}


def response_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    start = {**response, "status": "in_progress", "output": [], "usage": None}
    start.pop("policy_version", None)
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(response.get("output") or []):
        emit("response.output_item.added", output_index=index, item=_snapshot(item))
        kind, item_id = item.get("type"), item.get("id")
        if kind in ("message", "reasoning"):
            for j, part in enumerate(item.get("content") or []):
                where = {"item_id": item_id, "output_index": index, "content_index": j}
                emit("response.content_part.added", **where, part=_empty(part))
                ptype = part.get("type")
                if ptype == "output_text":
                    lps = part.get("logprobs") or []
                    emit("response.output_text.delta", **where, delta=part["text"], logprobs=lps)
                    emit("response.output_text.done", **where, text=part["text"], logprobs=lps)
                elif ptype == "refusal":
                    emit("response.refusal.delta", **where, delta=part["refusal"])
                    emit("response.refusal.done", **where, refusal=part["refusal"])
                elif ptype == "reasoning_text":
                    emit("response.reasoning.delta", **where, delta=part["text"])
                    emit("response.reasoning.done", **where, text=part["text"])
                emit("response.content_part.done", **where, part=part)
        elif kind == "function_call":
            where = {"item_id": item_id, "output_index": index}
            emit("response.function_call_arguments.delta", **where, delta=item["arguments"])
            emit("response.function_call_arguments.done", **where,
                 arguments=item["arguments"], name=item.get("name"))  # fmt: skip
        emit("response.output_item.done", output_index=index, item=item)
    emit(_TERMINAL.get(response.get("status"), "response.failed"), response=response)
    return events
