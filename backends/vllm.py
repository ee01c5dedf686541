"""vLLM (OpenAI-compatible server, 0.12 and later; checked against 0.32).

Quirks: unknown fields are accepted and ignored with HTTP 200, so the removed `guided_*`
fields would silently lose their constraint (translated to `structured_outputs` instead)
and SGLang-only extras would do nothing (translated where vLLM has an equivalent, else
refused). Reasoning comes as `reasoning` (older builds: `reasoning_content`, aliased).
Token ids, `prompt_logprobs`, `stop_reason`, `kv_transfer_params` pass through untouched.
"""

from __future__ import annotations

from backends import extras
from backends.open_engine import OpenEngineDriver
from backends.params import ParamTable, honour_all, refuse_all, refused, rename, translated
from backends.structured import to_structured_outputs
from gateway.translate import DEFAULT_DIALECT

_GUIDED = [
    translated(
        name,
        f"sent as `structured_outputs.{name.removeprefix('guided_')}` (vLLM removed "
        "`guided_*` in 0.12 and ignores it with HTTP 200)",
        to_structured_outputs(name, name.removeprefix("guided_")),
        to="structured_outputs",
    )
    for name in extras.GUIDED
]

TABLE = ParamTable(
    family="vllm",
    params=(
        *honour_all(extras.OPENAI_CORE),
        *honour_all(extras.BOOKKEEPING, "accepted; no effect on the answer"),
        *honour_all(extras.SHARED_ENGINE_EXTRAS),
        *honour_all(extras.VLLM_ONLY),
        *_GUIDED,
        translated(
            "regex",
            "SGLang's form; sent as `structured_outputs.regex`",
            to_structured_outputs("regex", "regex"),
            to="structured_outputs",
        ),
        translated(
            "ebnf",
            "SGLang's form; sent as `structured_outputs.grammar` (both engines use xgrammar's "
            "EBNF)",
            to_structured_outputs("ebnf", "grammar"),
            to="structured_outputs",
        ),
        translated(
            "rid",
            "SGLang's request id; sent as `request_id`",
            rename("rid", "request_id"),
            to="request_id",
        ),
        translated(
            "no_stop_trim",
            "SGLang's form; sent as `include_stop_str_in_output`",
            rename("no_stop_trim", "include_stop_str_in_output"),
            to="include_stop_str_in_output",
        ),
        translated(
            "return_prompt_token_ids",
            "SGLang's form; sent as `return_token_ids` (vLLM answers with top-level "
            "`prompt_token_ids` and `choices[].token_ids`)",
            rename("return_prompt_token_ids", "return_token_ids"),
            to="return_token_ids",
        ),
        refused(
            extras.GUIDED_BACKEND,
            "vLLM >= 0.12 picks the structured-output backend at start-up "
            "(`--structured-outputs-config`), not per request.",
        ),
        *refuse_all(extras.OPENAI_ONLY, "an OpenAI-only feature; vLLM would ignore it silently."),
        *refuse_all(
            (
                "stop_regex",
                "lora_path",
                "session_params",
                "separate_reasoning",
                "stream_reasoning",
                "return_hidden_states",
                "custom_logit_processor",
                "custom_params",
            ),
            "an SGLang-only extra; vLLM would ignore it silently.",
        ),
        refused(
            "input_ids",
            "SGLang's token-in field; vLLM ignores it. On vLLM send the prompt ids as "
            "`kv_transfer_params.prompt_token_ids`.",
        ),
    ),
    unknown="pass",
    unknown_note="vLLM accepts unknown fields (and ignores those it does not know).",
)

_COMPLETIONS_TRANSLATIONS = {p.name: p for p in _GUIDED}


class VLLMDriver(OpenEngineDriver):
    params = TABLE
    dialect = DEFAULT_DIALECT
    completions_translations = _COMPLETIONS_TRANSLATIONS
