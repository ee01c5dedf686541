"""Parameter names shared by several family tables (plain data).

OpenAI's own Chat Completions parameters, and the engine extras of vLLM and SGLang. Each
family's table (backends/<family>.py) says what it does with them.
"""

from __future__ import annotations

# OpenAI Chat Completions parameters every OpenAI-compatible engine takes as they are.
OPENAI_CORE = (
    "model",
    "messages",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
)
# OpenAI-only features that open engines accept and silently ignore.
OPENAI_ONLY = ("audio", "modalities", "prediction", "web_search_options", "verbosity")
# Bookkeeping fields: no effect on the answer.
BOOKKEEPING = ("user", "metadata", "safety_identifier", "prompt_cache_key", "service_tier")

# Sampling extras both vLLM and SGLang take under the same name.
SHARED_ENGINE_EXTRAS = (
    "top_k",
    "min_p",
    "repetition_penalty",
    "min_tokens",
    "stop_token_ids",
    "ignore_eos",
    "skip_special_tokens",
    "continue_final_message",
    "chat_template_kwargs",
    "return_token_ids",
    "priority",
    "cache_salt",
)
# vLLM-only extras (vllm/entrypoints/openai/chat_completion/protocol.py, 0.32).
VLLM_ONLY = (
    "use_beam_search",
    "length_penalty",
    "include_stop_str_in_output",
    "spaces_between_special_tokens",
    "truncate_prompt_tokens",
    "prompt_logprobs",
    "logprob_token_ids",
    "allowed_token_ids",
    "bad_words",
    "echo",
    "add_generation_prompt",
    "add_special_tokens",
    "documents",
    "chat_template",
    "media_io_kwargs",
    "mm_processor_kwargs",
    "structured_outputs",
    "request_id",
    "return_tokens_as_token_ids",
    "return_prompt_text",
    "kv_transfer_params",
    "vllm_xargs",
    "thinking_token_budget",
    "include_reasoning",
)
# SGLang-only extras (python/sglang/srt/entrypoints/openai/protocol.py).
SGLANG_ONLY = (
    "regex",
    "ebnf",
    "stop_regex",
    "no_stop_trim",
    "lora_path",
    "session_params",
    "separate_reasoning",
    "stream_reasoning",
    "return_hidden_states",
    "return_prompt_token_ids",
    "custom_logit_processor",
    "custom_params",
    "input_ids",
    "rid",
)
# vLLM removed these in 0.12 and now ignores them with HTTP 200 (output NOT constrained).
GUIDED = (
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "guided_whitespace_pattern",
)
GUIDED_BACKEND = "guided_decoding_backend"
ENGINE_EXTRAS = (*SHARED_ENGINE_EXTRAS, *VLLM_ONLY, *SGLANG_ONLY)
