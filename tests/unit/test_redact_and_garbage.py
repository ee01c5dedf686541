"""Secret redaction (issue 18.7) and the cheap checks on what an upstream sends (18.6)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from backends.answers import answer_problem
from backends.http import chunk_problem
from gateway import redact
from gateway.config import parse_config
from gateway.errors import GatewayError

KEY = "sk-upstream-abcdef123456"


@pytest.fixture(autouse=True)
def clean_secrets() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


def test_known_secrets_are_cut_from_text_and_bytes() -> None:
    redact.remember([KEY, "short", None, 'Bearer tok/en+with"quote'])
    assert redact.redact(f"auth: Bearer {KEY}.") == "auth: Bearer [redacted]."
    assert redact.redact("short stays") == "short stays"  # placeholders are no secrets
    text = "nothing here"
    assert redact.redact(text) is text
    assert redact.redact_bytes(b'{"error":{"message":"' + KEY.encode() + b'"}}') == (
        b'{"error":{"message":"[redacted]"}}'
    )
    # the last word of a header value, in its JSON-escaped spelling too
    assert redact.redact_bytes(b'{"m":"tok/en+with\\"quote"}') == b'{"m":"[redacted]"}'


def test_every_secret_of_a_config_is_remembered() -> None:
    config = parse_config(
        """
server:
  admin_key: admin-secret-1
  api_keys: [{name: a, key: gateway-secret-1}]
models:
  - name: m
    backend: vllm
    base_url: http://127.0.0.1:1/v1
    api_key: route-secret-1
    headers: {api-key: azure-secret-1, x-trace: not-a-secret-value}
""",
        "t",
    )
    redact.remember_config(config)
    text = "admin-secret-1 gateway-secret-1 route-secret-1 azure-secret-1 not-a-secret-value"
    assert redact.redact(text) == "[redacted] [redacted] [redacted] [redacted] not-a-secret-value"


def test_errors_are_redacted_as_they_are_made_and_changed() -> None:
    redact.remember([KEY])
    exc = GatewayError(500, f"upstream said {KEY}", param=KEY)
    assert KEY not in str(exc.body()) and KEY not in str(exc)
    exc.message = f"prefix: {KEY}"
    assert exc.message == "prefix: [redacted]"


def test_the_log_filter_redacts_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    redact.remember([KEY])
    log = logging.getLogger("test.redact")
    handler = logging.Handler()
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(redact.RedactingFilter())
    log.addHandler(handler)
    try:
        log.warning("key %s in args", KEY)
        try:
            raise ValueError(f"boom {KEY}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert records[0].getMessage() == "key [redacted] in args"
    assert records[1].exc_text is not None and KEY not in records[1].exc_text
    assert "boom [redacted]" in records[1].exc_text


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b'{"choices":[{"delta":{"content":"ok"}}]}', None),
        (b'{"choices": [], "usage": {}}', None),
        (b'{"error":{"message":"x"}}', None),
        (b'{"choices":[{"delta":{"content":"\xc3\xbc"}}]}', None),  # UTF-8
        (b' {"choices":[]} ', None),  # spaced: the slow check accepts it
        (b"{not json", "is not valid JSON"),
        (b'{"choices":[{"delta":{"content":"\xff"}}]}', "is not valid UTF-8"),
        (b"null", "is a JSON null, not an object"),
        (b"[1,2,3]", "is a JSON list, not an object"),
        (b'{"choices": 5}', "has a 'choices' that is not a list"),
        (b'{"choices":{"a":1}}', "has a 'choices' that is not a list"),
    ],
)
def test_stream_chunks_are_checked_on_bytes(payload: bytes, problem: str | None) -> None:
    found = chunk_problem(payload)
    assert found == problem if problem is None else found and found.startswith(problem)


@pytest.mark.parametrize(
    ("answer", "item", "problem"),
    [
        ({"choices": [{"message": {"content": "x"}}], "extra": 1}, "message", None),
        ({"choices": []}, "message", None),
        ({}, "message", "has no 'choices' list"),
        ({"choices": 5}, "message", "has a 'choices' that is no list"),
        ({"choices": [5]}, "message", "has a choice that is not a JSON object"),
        ({"choices": [{"index": 0}]}, "message", "has a choice without a 'message' object"),
        ({"choices": [{"text": "x"}]}, None, None),
    ],
)
def test_answers_without_the_shape_clients_read(
    answer: dict, item: str | None, problem: str | None
) -> None:
    assert answer_problem(answer, item) == problem
