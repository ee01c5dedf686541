"""The request bodies of the benchmark: one realistic agent turn, as Chat and as Responses
(a system prompt, a user message, one function tool, sampling parameters)."""

from __future__ import annotations

from typing import Any

SYSTEM = (
    "You are a careful assistant inside an evaluation environment. Answer briefly, call a "
    "tool when the question needs live data, and never invent tool results."
)
USER = (
    "What is the weather in Paris right now, and should I take an umbrella for a walk along "
    "the Seine this afternoon? Please answer in two sentences."
)
PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}


def chat_body(model: str, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "temperature": 0.7,
        "max_tokens": 256,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": PARAMETERS,
                },
            }
        ],
    }
    if stream:
        body["stream"] = True
    return body


def responses_body(model: str, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "instructions": SYSTEM,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": USER}]}],
        "temperature": 0.7,
        "max_output_tokens": 256,
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": PARAMETERS,
            }
        ],
    }
    if stream:
        body["stream"] = True
    return body
