"""Responses API <-> Chat Completions translation: pure functions over parsed JSON dicts."""

from __future__ import annotations

from .common import TOKEN_FIELDS, new_id
from .dialect import DEFAULT_DIALECT, OPENAI_DIALECT, ChatDialect
from .request import responses_to_chat
from .response import chat_to_response
from .response_object import (
    RESPONSE_EVENTS,
    TERMINAL_EVENTS,
    build_response,
    effective_params,
    error_event,
    fill_response,
)
from .stream import ResponsesStreamTranslator

__all__ = [
    "DEFAULT_DIALECT",
    "OPENAI_DIALECT",
    "RESPONSE_EVENTS",
    "TERMINAL_EVENTS",
    "TOKEN_FIELDS",
    "ChatDialect",
    "ResponsesStreamTranslator",
    "build_response",
    "chat_to_response",
    "effective_params",
    "error_event",
    "fill_response",
    "new_id",
    "responses_to_chat",
]
