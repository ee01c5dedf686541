"""What the open engines (vLLM, SGLang) share over the OpenAI-compatible driver: one
reasoning shape on answers and chunks, engine endpoints at the server root, structured
output parameters translated on /v1/completions too, and how the gateway's refit pause
modes are asked of each engine (`engine_control: true`, docs/rl.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from backends.answers import ChunkTransform, normalize_reasoning, reasoning_chunk
from backends.openai_compat import OpenAICompatDriver


@dataclass(frozen=True, slots=True)
class EngineCall:
    """One POST to an engine replica's server root (pause or resume)."""

    path: str
    body: dict[str, Any] | None = None
    #: call only once the gateway's own in-flight requests finished (its `wait` drain)
    after_drain: bool = False


class OpenEngineDriver(OpenAICompatDriver):
    engine_paths = frozenset({"/tokenize", "/detokenize"})
    #: parameters translated on /v1/completions (name -> its table entry)
    completions_translations: ClassVar[Mapping[str, Any]] = {}

    # vLLM's RL endpoints (VLLM_SERVER_DEV_MODE=1): its modes are the gateway's own names.
    def pause_call(self, mode: str) -> EngineCall:
        return EngineCall(f"/pause?mode={mode}")

    def resume_call(self) -> EngineCall:
        return EngineCall("/resume")

    def adapt_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        return normalize_reasoning(answer)

    def chunk_transform(self) -> ChunkTransform | None:
        return reasoning_chunk

    def adapt_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        # engines ignore unknown structured-output fields on /v1/completions too: translate
        # them, pass the rest as sent
        table = self.completions_translations
        for name in [k for k in body if k in table]:
            value = body.pop(name)
            if value is not None:
                table[name].translate(body, value)
        return body
