"""What the target Chat Completions backend understands, as far as the translator cares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChatDialect:
    """Describes the chat backend a Responses request is translated for.

    developer_role: keep the ``developer`` role (else it becomes ``system``); when true,
        ``instructions`` are sent as a ``developer`` message too.
    reasoning_field: assistant-message field that carries replayed reasoning text
        (``"reasoning"`` for vLLM, ``"reasoning_content"`` for SGLang); None drops it.
    keep_tool_strict: forward ``strict`` on function tools (vLLM and others reject it).
    max_tokens_field: where ``max_output_tokens`` goes (``max_tokens`` or
        ``max_completion_tokens``).
    merge_system: fold ``instructions`` and the leading system/developer messages into a
        single system message joined by a blank line (chat templates often allow only one).
    file_parts: the backend reads chat ``file`` content parts, so ``input_file`` parts are
        translated to them (else they are refused with a 400).
    """

    developer_role: bool = False
    reasoning_field: str | None = "reasoning"
    keep_tool_strict: bool = False
    max_tokens_field: str = "max_tokens"
    merge_system: bool = True
    file_parts: bool = False


#: Open engines (vLLM, SGLang with reasoning_field="reasoning_content", TGI, the mock).
DEFAULT_DIALECT = ChatDialect()

#: OpenAI Chat Completions: knows `developer`, `strict` and `max_completion_tokens`, returns no
#: reasoning text and cannot take it back, and accepts several system messages.
OPENAI_DIALECT = ChatDialect(
    developer_role=True,
    reasoning_field=None,
    keep_tool_strict=True,
    max_tokens_field="max_completion_tokens",
    merge_system=False,
    file_parts=True,
)
