"""SGLang (OpenAI-compatible server).

Quirks: unknown fields are silently ignored (pydantic's default), so vLLM-only extras would
do nothing: translated where SGLang has an equivalent (structured outputs, request id, stop
string trimming), else refused. Reasoning comes as `reasoning_content`; the gateway adds
`reasoning` with the same text (the documented shape) and keeps the original field.
"""

from __future__ import annotations

from backends import extras
from backends.open_engine import OpenEngineDriver
from backends.params import ParamTable, honour_all, refuse_all, refused, rename, translated
from backends.structured import emit_sglang, structured_via
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


class SGLangDriver(OpenEngineDriver):
    params = TABLE
    dialect = ChatDialect(reasoning_field="reasoning_content")
    completions_translations = _COMPLETIONS_TRANSLATIONS
