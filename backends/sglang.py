"""SGLang (OpenAI-compatible server).

Quirks: unknown fields are silently ignored (pydantic's default), so vLLM-only extras would
do nothing: translated where SGLang has an equivalent (structured outputs, request id, stop
string trimming), else refused. Reasoning comes as `reasoning_content`; the gateway adds
`reasoning` with the same text (the documented shape) and keeps the original field.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from backends import extras
from backends.base import ChatStream
from backends.http import client_errors
from backends.open_engine import EngineCall, OpenEngineDriver
from backends.params import ParamTable, honour_all, refuse_all, refused, rename, translated
from backends.structured import emit_sglang, structured_via
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.translate import ChatDialect

# name -> (what SGLang receives, how)
_SGLANG_FORM = {
    "guided_json": ("response_format", "sent as `response_format` (json_schema)"),
    "guided_regex": ("regex", "sent as `regex`"),
    "guided_choice": ("regex", "sent as a `regex` matching exactly one of the choices"),
    "guided_grammar": ("ebnf", "sent as `ebnf` (both engines use xgrammar's EBNF)"),
    "structured_outputs": (
        "response_format",
        "its one constraint in SGLang's form: json as `response_format`, regex and choice as "
        "`regex`, grammar as `ebnf` (whitespace options are refused)",
    ),
}
_STRUCTURED = [
    translated(name, how, structured_via(name, emit_sglang), to=field)
    for name, (field, how) in _SGLANG_FORM.items()
]
_TRANSLATED_VLLM = {"structured_outputs", "request_id", "include_stop_str_in_output"}

TABLE = ParamTable(
    family="sglang",
    params=(
        *honour_all(extras.OPENAI_CORE),
        *honour_all(extras.BOOKKEEPING, "accepted; no effect on the answer"),
        *honour_all(extras.SHARED_ENGINE_EXTRAS),
        *honour_all(extras.SGLANG_ONLY),
        *_STRUCTURED,
        translated("request_id", "sent as SGLang's `rid`", rename("request_id", "rid"), to="rid"),
        translated(
            "include_stop_str_in_output",
            "sent as SGLang's `no_stop_trim`",
            rename("include_stop_str_in_output", "no_stop_trim"),
            to="no_stop_trim",
        ),
        refused(
            "return_tokens_as_token_ids",
            "SGLang has no `token_id:<n>` logprob tokens; ask for `return_token_ids` (and "
            "`return_prompt_token_ids`) instead.",
        ),
        refused(extras.GUIDED_BACKEND, "SGLang picks its grammar backend at start-up."),
        refused("guided_whitespace_pattern", "SGLang has no whitespace-pattern option."),
        *refuse_all(extras.OPENAI_ONLY, "an OpenAI-only feature; SGLang would ignore it silently."),
        *refuse_all(
            (
                n
                for n in extras.VLLM_ONLY
                if n not in _TRANSLATED_VLLM and n != "return_tokens_as_token_ids"
            ),
            "a vLLM-only extra; SGLang would ignore it silently.",
        ),
    ),
    unknown="pass",
    unknown_note="SGLang ignores fields it does not know.",
)

_COMPLETIONS_TRANSLATIONS = {p.name: p for p in _STRUCTURED if p.name != "structured_outputs"}


# The gateway's pause modes in SGLang's terms (POST /pause_generation {"mode": ...}, 0.5.23).
# keep -> retract: running requests go back to the waiting queue with the tokens generated so
#   far and continue after /continue_generation (prefilled again, with the new weights);
#   SGLang's `in_place` would keep their KV cache, but then the cache flush that
#   /update_weights_from_disk does by default fails while a batch is running.
# wait -> retract, sent once the gateway's own in-flight requests finished (SGLang has no
#   draining mode; work sent straight to the engine is kept, not lost).
# abort -> abort: SGLang aborts what it is running (the gateway answers its clients 503).
SGLANG_PAUSE_MODES = {"keep": "retract", "wait": "retract", "abort": "abort"}


class SGLangDriver(OpenEngineDriver):
    params = TABLE
    dialect = ChatDialect(reasoning_field="reasoning_content")
    completions_translations = _COMPLETIONS_TRANSLATIONS

    def pause_call(self, mode: str) -> EngineCall:
        return EngineCall(
            "/pause_generation",
            {"mode": SGLANG_PAUSE_MODES[mode]},
            after_drain=mode == "wait",
        )

    def resume_call(self) -> EngineCall:
        return EngineCall("/continue_generation", {})

    # -- upstream_model: SGLang answers any `model` with what it loaded (vLLM answers 404) --
    _served: frozenset[str] | None = None
    _served_at = -1e9
    MODELS_TTL_S = 60.0  # a model list this old is asked again before a 404

    _verified = False

    async def check_model(self) -> None:
        """404 `model_not_found` when the engine's GET /v1/models does not list the route's
        `upstream_model`. Once found it stays verified; a miss is asked again after a minute.
        No check when the engine does not answer, or lists a filesystem path: after
        `/update_weights_from_disk` SGLang 0.5.23 lists the weights' path instead of its
        `--served-model-name` (verified), so the name can no longer be checked."""
        if self._verified:
            return
        model = self.route.target_model
        if self._served is None or time.monotonic() - self._served_at > self.MODELS_TTL_S:
            self._served = await self._served_models()
            self._served_at = time.monotonic()
        served = self._served
        if served is None or model in served or any(m.startswith("/") for m in served):
            self._verified = served is not None
            return
        if model not in served:
            raise GatewayError(
                404,
                f"The model `{model}` does not exist on the SGLang server of route "
                f"'{self.route.name}' (it serves {', '.join(sorted(self._served)) or 'none'}).",
                type="NotFoundError",
                param="model",
                code="model_not_found",
            )

    async def _served_models(self) -> frozenset[str] | None:
        upstream = self.upstream
        try:
            async with self.http.session.get(
                upstream.base_url + "/models", headers=upstream.headers, timeout=upstream.timeout
            ) as resp:
                doc = orjson.loads(await resp.read()) if resp.status == 200 else None
        except (*client_errors(), orjson.JSONDecodeError):
            return None
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            return None
        return frozenset(
            c["id"] for c in data if isinstance(c, dict) and isinstance(c.get("id"), str)
        )

    async def chat(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        await self.check_model()
        return await super().chat(body, ctx)

    async def open_chat_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        await self.check_model()
        return await super().open_chat_stream(body, ctx)

    async def completions(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        await self.check_model()
        return await super().completions(body, ctx)

    async def open_completions_stream(
        self, body: dict[str, Any], ctx: RequestContext
    ) -> ChatStream:
        await self.check_model()
        return await super().open_completions_stream(body, ctx)
