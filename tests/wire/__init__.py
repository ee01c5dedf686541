"""Recorded-shape wire fixtures per backend family, replayed by the scripted upstream.

Each fixture is built from the shapes the families document and answer (see
../../shared reference notes and tests/vllm/README.md for vLLM 0.32's real answers): the
upstream model name picks one. A fixture has `status`, an answer `json` (or error body),
optional stream `chunks` (payloads of `data:` lines; `[DONE]` is appended) and `headers`.
"""

from __future__ import annotations

from typing import Any

from tests.wire import gemini, openai, sglang, tgi, vllm

FIXTURES: dict[str, dict[str, Any]] = {
    **vllm.FIXTURES,
    **sglang.FIXTURES,
    **tgi.FIXTURES,
    **openai.FIXTURES,
    **gemini.FIXTURES,
}
