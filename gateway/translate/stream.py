"""Chat Completions stream chunks -> Responses API streaming events (a small state machine).

Usage: ``start()`` once, ``feed(chunk)`` per parsed chunk, then ``finish()`` at the end of
the upstream stream (or ``fail(...)`` on a transport error). Every method returns the event
dicts to send, in order; each has ``type`` and a ``sequence_number`` counting from 0.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from .common import (
    convert_logprobs,
    convert_usage,
    finish_status,
    function_call_item,
    message_item,
    new_id,
    now,
    output_text_part,
    reasoning_item,
    token_bundle,
    wants_logprobs,
)
from .response_object import build_response, effective_params, error_event, response_error

# The one event of almost every chunk, framed by hand when the translator frames its own
# events (``framed=True``): byte for byte what frame_named() makes of the event dict.
_DELTA_HEAD = (
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
    b'"sequence_number":'
)
_DELTA_TAIL = b',"logprobs":[]}\n\n'

_EMPTY_PART = {
    "output_text": lambda: output_text_part("", []),
    "refusal": lambda: {"type": "refusal", "refusal": ""},
    "reasoning_text": lambda: {"type": "reasoning_text", "text": ""},
}


class _Text:
    """An open-or-closed reasoning or message item."""

    __slots__ = ("buf", "cur", "delta_where", "final", "id", "index", "kind", "lps", "parts")

    def __init__(self, kind: str, index: int) -> None:
        self.kind = kind  # "reasoning" | "message"
        self.id = new_id("rs" if kind == "reasoning" else "msg")
        self.index = index
        self.parts: list[dict] = []  # closed content parts
        self.cur: str | None = None  # open part type: reasoning_text | output_text | refusal
        self.buf: list[str] = []
        self.lps: list[dict] = []
        self.final: dict | None = None
        self.delta_where: tuple[int, bytes] = (-1, b"")  # (content index, its encoded fields)

    def encoded_where(self) -> bytes:
        """`,"item_id":…,"output_index":…,"content_index":…,"delta":` for the open part."""
        content_index = len(self.parts)
        if self.delta_where[0] != content_index:
            where = (
                f',"item_id":"{self.id}","output_index":{self.index},'
                f'"content_index":{content_index},"delta":'
            )
            self.delta_where = (content_index, where.encode())
        return self.delta_where[1]

    def part(self) -> dict:
        text = "".join(self.buf)
        if self.cur == "output_text":
            return output_text_part(text, self.lps)
        if self.cur == "refusal":
            return {"type": "refusal", "refusal": text}
        return {"type": "reasoning_text", "text": text}

    def build(self, status: str) -> dict:
        parts = [*self.parts, self.part()] if self.cur else list(self.parts)
        if self.kind == "reasoning":
            item = reasoning_item(self.id, "", status)
            item["content"] = parts
            return item
        return message_item(self.id, parts, status)


class _Call:
    """A function call, keyed by the chat ``tool_calls[].index``."""

    __slots__ = ("added", "buf", "call_id", "extra", "final", "id", "index", "name")

    def __init__(self) -> None:
        self.id = new_id("fc")
        self.index = -1
        self.call_id: str | None = None
        self.name: str | None = None
        self.buf: list[str] = []
        self.added = False
        self.final: dict | None = None
        self.extra: dict | None = None  # Gemini's extra_content (thought_signature)

    def build(self, status: str) -> dict:
        item = function_call_item(
            self.id, self.call_id or "", self.name or "", "".join(self.buf), status
        )
        if self.extra:
            item["extra_content"] = self.extra
        return item


class ResponsesStreamTranslator:
    """Turns one Chat Completions stream into one Responses event stream."""

    def __init__(
        self,
        request: dict,
        *,
        model: str,
        response_id: str | None = None,
        created_at: int | None = None,
        framed: bool = False,
        effective: dict | None = None,
    ) -> None:
        # framed: output_text delta events without log-probs come out as SSE bytes (the
        # relay's hot path), every other event as a dict (frame them with frame_named)
        self._framed = framed
        self._request = request
        self._effective = effective if effective is not None else effective_params(request)
        self._want_lps = wants_logprobs(request)  # else logprobs only feed the token bundle
        self._service_tier: str | None = None
        self._model = model
        self._id = response_id or new_id("resp")
        self._created_at = created_at if created_at is not None else now()
        self._seq = 0
        self._items: list[Any] = []  # _Text | _Call in output order
        self._text: _Text | None = None  # the open reasoning/message item
        self._calls: dict[Any, _Call] = {}
        self._open_calls: list[_Call] = []
        self._orphan_lps: list[dict] = []  # logprobs seen before the next output_text delta
        self._all_lps: list[dict] = []
        self._prompt_ids: list | None = None
        self._gen_ids: list | None = None
        self._finish_reason: str | None = None
        self._usage: dict | None = None
        self._started = False
        self._done = False

    # ---- public API -------------------------------------------------------------------------

    @property
    def finish_reason(self) -> str | None:
        """The upstream's finish_reason, once a chunk carried one."""
        return self._finish_reason

    def start(self) -> list[dict]:
        if self._started:
            return []
        self._started = True
        snapshot = self._response("in_progress", [])  # one object for both: framed at once
        return [
            self._ev("response.created", response=snapshot),
            self._ev("response.in_progress", response=snapshot),
        ]

    def feed(self, chunk: dict) -> list[dict]:
        if self._done:
            return []
        ev = self.start()
        if chunk.get("error"):
            err = chunk["error"]
            if isinstance(err, dict):
                code = err.get("code")
                message = err.get("message") or "upstream error"
            else:
                code, message = None, str(err)
            ev += self.fail(message, code if isinstance(code, str) and code else "server_error")
            return ev
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if self._service_tier is None and isinstance(chunk.get("service_tier"), str):
            self._service_tier = chunk["service_tier"]
        if self._prompt_ids is None and chunk.get("prompt_token_ids") is not None:
            self._prompt_ids = chunk["prompt_token_ids"]
        choice = None
        for c in chunk.get("choices") or ():
            if c.get("index", 0) == 0:
                choice = c
                break
        if choice is None:
            return ev
        if choice.get("token_ids"):
            if self._gen_ids is None:
                self._gen_ids = []
            self._gen_ids.extend(choice["token_ids"])
        lps = (choice.get("logprobs") or {}).get("content")
        if lps:
            lps = convert_logprobs(lps)
            self._all_lps.extend(lps)
            if not self._want_lps:
                lps = None
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        if reasoning:
            self._text_delta(ev, "reasoning", "reasoning_text", reasoning, None)
        if delta.get("content"):
            self._text_delta(ev, "message", "output_text", delta["content"], lps or [])
        elif lps:
            self._orphan_lps.extend(lps)
        if delta.get("refusal"):
            self._text_delta(ev, "message", "refusal", delta["refusal"], None)
        for tc in delta.get("tool_calls") or ():
            self._tool_delta(ev, tc)
        if choice.get("finish_reason") is not None:
            self._finish_reason = choice["finish_reason"]
        return ev

    def finish(self) -> list[dict]:
        """Close open items and emit the one terminal event."""
        if self._done:
            return []
        ev = self.start()
        self._done = True
        for call in list(self._calls.values()):
            if not call.added:  # name never arrived: add it as it is
                self._add_call(ev, call)
        if not self._items:
            self._text_delta(ev, "message", "output_text", "", [])
        status, incomplete, error = finish_status(self._finish_reason)
        last = self._items[-1]
        extra = token_bundle(None, self._prompt_ids, self._gen_ids, self._all_lps)
        last_status = "completed" if status == "completed" else "incomplete"
        self._close_text(
            ev,
            last_status if self._text is last else "completed",
            extra if self._text is last else None,
        )
        for call in self._open_calls:
            is_last = call is last
            self._close_call(
                ev, call, last_status if is_last else "completed", extra if is_last else None
            )
        self._open_calls = []
        output = [item.final for item in self._items]
        terminal = {"completed": "response.completed", "incomplete": "response.incomplete"}
        response = self._response(status, output, incomplete, error)
        ev.append(self._ev(terminal.get(status, "response.failed"), response=response))
        return ev

    def fail(
        self, message: str, code: str = "server_error", type_: str = "server_error"
    ) -> list[dict]:
        """An ``error`` event then ``response.failed``; open items are not closed."""
        if self._done:
            return []
        ev = self.start()
        self._done = True
        ev.append(error_event(self._seq, message, code, type_))
        self._seq += 1
        output = [item.final or item.build("incomplete") for item in self._items]
        error = response_error(code, message)
        ev.append(
            self._ev("response.failed", response=self._response("failed", output, None, error))
        )
        return ev

    # ---- internals --------------------------------------------------------------------------

    def _ev(self, type_: str, **fields: Any) -> dict:
        event = {"type": type_, "sequence_number": self._seq}
        event.update(fields)
        self._seq += 1
        return event

    def _response(
        self, status: str, output: list, incomplete: dict | None = None, error: dict | None = None
    ) -> dict:
        usage = convert_usage(self._usage) if status != "in_progress" else None
        return build_response(
            self._request,
            model=self._model,
            response_id=self._id,
            created_at=self._created_at,
            status=status,
            output=output,
            usage=usage,
            incomplete_details=incomplete,
            error=error,
            effective=self._effective,
            service_tier=self._service_tier,
        )

    def _text_delta(self, ev: list, kind: str, part: str, delta: str, lps: list | None) -> None:
        item = self._text
        if item is None or item.kind != kind:
            self._close_text(ev)
            self._close_calls(ev)
            item = self._text = _Text(kind, len(self._items))
            self._items.append(item)
            snapshot = item.build("in_progress")
            ev.append(
                self._ev("response.output_item.added", output_index=item.index, item=snapshot)
            )
        if item.cur != part:
            self._close_part(ev, item)
            item.cur = part
            ev.append(
                self._ev(
                    "response.content_part.added",
                    item_id=item.id,
                    output_index=item.index,
                    content_index=len(item.parts),
                    part=_EMPTY_PART[part](),
                )
            )
        if part == "output_text":
            if self._orphan_lps:
                lps = self._orphan_lps + (lps or [])
                self._orphan_lps = []
            if lps:
                item.lps.extend(lps)
        if not delta:
            return
        item.buf.append(delta)
        if part == "output_text" and self._framed and not lps:
            seq = self._seq
            self._seq = seq + 1
            fields = item.encoded_where()
            text = orjson.dumps(delta)
            ev.append(b"".join((_DELTA_HEAD, str(seq).encode(), fields, text, _DELTA_TAIL)))
            return
        where = {"item_id": item.id, "output_index": item.index, "content_index": len(item.parts)}
        if part == "output_text":
            ev.append(
                self._ev("response.output_text.delta", **where, delta=delta, logprobs=lps or [])
            )
        elif part == "refusal":
            ev.append(self._ev("response.refusal.delta", **where, delta=delta))
        else:
            ev.append(self._ev("response.reasoning.delta", **where, delta=delta))

    def _close_part(self, ev: list, item: _Text) -> None:
        if item.cur is None:
            return
        part = item.part()
        where = {"item_id": item.id, "output_index": item.index, "content_index": len(item.parts)}
        if item.cur == "output_text":
            ev.append(
                self._ev(
                    "response.output_text.done",
                    **where,
                    text=part["text"],
                    logprobs=part["logprobs"],
                )
            )
        elif item.cur == "refusal":
            ev.append(self._ev("response.refusal.done", **where, refusal=part["refusal"]))
        else:
            ev.append(self._ev("response.reasoning.done", **where, text=part["text"]))
        ev.append(self._ev("response.content_part.done", **where, part=part))
        item.parts.append(part)
        item.cur, item.buf, item.lps = None, [], []

    def _close_text(self, ev: list, status: str = "completed", extra: dict | None = None) -> None:
        item = self._text
        if item is None:
            return
        self._close_part(ev, item)
        item.final = item.build(status)
        if extra:
            item.final.update(extra)
        ev.append(self._ev("response.output_item.done", output_index=item.index, item=item.final))
        self._text = None

    def _tool_delta(self, ev: list, tc: dict) -> None:
        key = tc.get("index")
        if key is None:  # index-less backends: a new id (or first entry) starts a new call
            if tc.get("id") or not self._calls:
                key = ("pos", len(self._calls))
            else:
                key = next(reversed(self._calls))
        call = self._calls.get(key)
        if call is None:
            self._close_text(ev)
            self._close_finished_calls(ev)
            call = self._calls[key] = _Call()
        if call.final is not None:
            return  # late fragment for a call already closed: ignored (see docs/responses.md)
        fn = tc.get("function") or {}
        if tc.get("id") and call.call_id is None:
            call.call_id = tc["id"]
        if fn.get("name") and call.name is None:
            call.name = fn["name"]
        if tc.get("extra_content") and call.extra is None:
            call.extra = tc["extra_content"]
        args = fn.get("arguments")
        if not call.added:
            if args:
                call.buf.append(args)
            if call.name is not None:
                self._add_call(ev, call)
        elif args:
            call.buf.append(args)
            ev.append(
                self._ev(
                    "response.function_call_arguments.delta",
                    item_id=call.id,
                    output_index=call.index,
                    delta=args,
                )
            )

    def _add_call(self, ev: list, call: _Call) -> None:
        call.added = True
        call.index = len(self._items)
        if call.call_id is None:
            call.call_id = new_id("call")
        self._items.append(call)
        self._open_calls.append(call)
        snapshot = function_call_item(call.id, call.call_id, call.name or "", "", "in_progress")
        ev.append(self._ev("response.output_item.added", output_index=call.index, item=snapshot))
        if call.buf:  # arguments that arrived before the name
            ev.append(
                self._ev(
                    "response.function_call_arguments.delta",
                    item_id=call.id,
                    output_index=call.index,
                    delta="".join(call.buf),
                )
            )

    def _close_call(
        self, ev: list, call: _Call, status: str = "completed", extra: dict | None = None
    ) -> None:
        call.final = call.build(status)
        if extra:
            call.final.update(extra)
        ev.append(
            self._ev(
                "response.function_call_arguments.done",
                item_id=call.id,
                output_index=call.index,
                arguments=call.final["arguments"],
                name=call.final["name"],
            )
        )
        ev.append(self._ev("response.output_item.done", output_index=call.index, item=call.final))

    def _close_calls(self, ev: list) -> None:
        for call in self._open_calls:
            self._close_call(ev, call)
        self._open_calls = []

    def _close_finished_calls(self, ev: list) -> None:
        """A new call index started: close the open calls whose arguments are complete JSON.

        Sequential streams (vLLM, SGLang, OpenAI) so close each call before the next opens;
        a call whose arguments are still partial (interleaved indices) stays open.
        """
        still_open = []
        for call in self._open_calls:
            try:
                json.loads("".join(call.buf))
            except ValueError:
                still_open.append(call)
            else:
                self._close_call(ev, call)
        self._open_calls = still_open
