"""The requests to compare: a JSONL of Chat or Responses bodies, NeMo Gym rows, OpenAI Batch
input lines, or a gateway recording made with `record_bodies: true`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

Endpoint = Literal["chat", "responses"]
PATHS: dict[str, str] = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}


class InputError(Exception):
    """A line that is not a request; the message names the file and line."""


@dataclass(slots=True)
class Case:
    index: int  # position in the input (0-based)
    id: str  # the line's id (custom_id, request_id, id) or its line number
    endpoint: Endpoint
    body: dict[str, Any]
    # from a recording: what the recorded route answered (replay compares against it)
    recorded: dict[str, Any] | None = None


def _endpoint_of(body: dict[str, Any]) -> Endpoint | None:
    if "messages" in body:
        return "chat"
    if "input" in body:
        return "responses"
    return None


def parse_line(doc: Any, where: str) -> tuple[Endpoint, dict[str, Any], str | None, Any]:
    """(endpoint, body, id, recorded record or None) for one input line."""
    if not isinstance(doc, dict):
        raise InputError(f"{where}: expected a JSON object")
    if "request" in doc and ("request_id" in doc or "route" in doc):  # a gateway recording
        body = doc["request"]
        if not isinstance(body, dict) or _endpoint_of(body) is None:
            raise InputError(
                f"{where}: this recording has no request bodies; record with "
                "`record_bodies: true` to compare or replay it"
            )
        return _endpoint_of(body), body, doc.get("request_id"), doc  # type: ignore[return-value]
    if isinstance(doc.get("responses_create_params"), dict):  # a NeMo Gym dataset row
        return "responses", doc["responses_create_params"], doc.get("id"), None
    if isinstance(doc.get("body"), dict) and "url" in doc:  # OpenAI Batch API input
        url = str(doc["url"])
        endpoint: Endpoint = "responses" if url.endswith("/responses") else "chat"
        return endpoint, doc["body"], doc.get("custom_id"), None
    endpoint_found = _endpoint_of(doc)
    if endpoint_found is None:
        raise InputError(
            f"{where}: not a request: a Chat body has `messages`, a Responses body `input` "
            "(NeMo Gym rows `responses_create_params`, Batch lines `url` and `body`)"
        )
    return endpoint_found, doc, doc.get("id") if isinstance(doc.get("id"), str) else None, None


def load_cases(path: str | Path, limit: int | None = None) -> list[Case]:
    cases: list[Case] = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{where}: invalid JSON ({exc})") from None
        endpoint, body, case_id, recorded = parse_line(doc, where)
        body = {k: v for k, v in body.items() if k != "model"}  # the route sets it
        cases.append(Case(len(cases), str(case_id or f"line{number}"), endpoint, body, recorded))
        if limit is not None and len(cases) >= limit:
            break
    if not cases:
        raise InputError(f"{path}: no requests in the file")
    return cases
