"""Build a tiny random Llama model with a ChatML template, fully offline.

Usage (with the vLLM venv's python, which has torch, transformers, tokenizers):

    python make_tiny_model.py OUTDIR [--seed N]

``--seed N`` (default 0) changes only the random weights (same tokenizer, template and
shapes): a second model for refit tests that load other weights into a running engine.

* Tokenizer: byte-level BPE, vocab 2048, trained with ``tokenizers`` on the
  Python standard library's sources (sorted, bounded amount of text).
  Special tokens: ``<|endoftext|>`` = 0 (pad/unk), ``<|im_start|>`` = 1,
  ``<|im_end|>`` = 2 (EOS).
* Model: random ``LlamaForCausalLM`` (hidden 64, 2 layers, 2 heads of 32 --
  head_dim 16 crashes vLLM's CPU attention kernels -- intermediate 128,
  max_position_embeddings 2048), seed 0, saved as safetensors.
* ``tokenizer_config.json`` carries a ChatML chat template with Hermes-style
  tools (``<tools>`` in the system prompt, ``<tool_call>{json}</tool_call>``
  for assistant tool calls, ``<tool_response>`` for tool results).

Deterministic and idempotent: an OUTDIR that already holds a complete model
built by the same version of this script is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

# Bump when anything below changes the output, so stale caches get rebuilt.
BUILD_VERSION = "tiny-llama-v1"
STAMP = ".gym-gateway-model"
REQUIRED = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)

SEED = 0
VOCAB_SIZE = 2048
MAX_TEXT_CHARS = 3_000_000  # bounded training text (~1-2 s of BPE training)
PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]  # ids 0, 1, 2

CHAT_TEMPLATE = r"""
{%- macro render(content) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- elif content is iterable and content is not mapping -%}
        {%- for part in content -%}
            {%- if part is string -%}
                {{- part -}}
            {%- elif part.type == 'text' -%}
                {{- part.text -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages and messages[0].role == 'system' %}
        {{- render(messages[0].content) + '\n\n' }}
    {%- endif %}
    {{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' }}
    {{- 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
    {%- for tool in tools %}
        {{- '\n' + (tool | tojson) }}
    {%- endfor %}
    {{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' }}
    {{- '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- elif messages and messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + render(messages[0].content) + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'system' and loop.first %}
    {%- elif message.role == 'assistant' %}
        {%- set content = render(message.content) %}
        {{- '<|im_start|>assistant\n' + content }}
        {%- if message.tool_calls is defined and message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if tool_call.function is defined %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {%- if loop.first and not content %}
                    {{- '<tool_call>\n' }}
                {%- else %}
                    {{- '\n<tool_call>\n' }}
                {%- endif %}
                {{- '{"name": ' + (tool_call.name | tojson) + ', "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {{- '<|im_start|>tool\n<tool_response>\n' + render(message.content) + '\n</tool_response><|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\n' + render(message.content) + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
""".strip()


def stamp_text(seed: int) -> str:
    return BUILD_VERSION if seed == SEED else f"{BUILD_VERSION}-seed{seed}"


def is_complete(outdir: Path, seed: int = SEED) -> bool:
    try:
        stamp = (outdir / STAMP).read_text().strip()
    except OSError:
        return False
    return stamp == stamp_text(seed) and all((outdir / f).is_file() for f in REQUIRED)


def training_text() -> list[str]:
    """Python stdlib sources, sorted, up to MAX_TEXT_CHARS characters."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    texts, total = [], 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        text = text[: MAX_TEXT_CHARS - total]
        texts.append(text)
        total += len(text)
        if total >= MAX_TEXT_CHARS:
            break
    if total < 100_000:
        raise SystemExit(f"too little training text found under {stdlib} ({total} chars)")
    return texts


def build_tokenizer(outdir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_text(), trainer=trainer)
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    tok.save(str(outdir / "tokenizer.json"))

    added = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, t in enumerate(SPECIAL_TOKENS)
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": PAD,
        "unk_token": PAD,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "padding_side": "left",
        "split_special_tokens": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (outdir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {
        "additional_special_tokens": [IM_START, IM_END],
        "eos_token": IM_END,
        "pad_token": PAD,
        "unk_token": PAD,
    }
    (outdir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def build_model(outdir: Path, seed: int = SEED) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(str(outdir), safe_serialization=True)
    GenerationConfig(
        bos_token_id=1, eos_token_id=2, pad_token_id=0, do_sample=False, max_new_tokens=16
    ).save_pretrained(str(outdir))


def check(outdir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(outdir))
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}],
        },
        {"role": "tool", "content": "42"},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    text = tok.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=True)
    assert (
        "<tools>" in text
        and '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>' in text
    ), text
    assert text.endswith("<|im_start|>assistant\n"), text
    ids = tok("<|im_start|>user\nHi<|im_end|>")["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2, ids


def main(argv: list[str]) -> int:
    seed = SEED
    if len(argv) == 4 and argv[2] == "--seed" and argv[3].isdigit():
        seed = int(argv[3])
    elif len(argv) != 2:
        print(
            __doc__.strip().splitlines()[0],
            f"\nusage: {argv[0]} OUTDIR [--seed N]",
            file=sys.stderr,
        )
        return 2
    outdir = Path(argv[1]).expanduser().resolve()
    if is_complete(outdir, seed):
        print(f"[make_tiny_model] model already complete: {outdir}", file=sys.stderr)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    t0 = time.monotonic()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=outdir.name + ".tmp-", dir=outdir.parent))
    tmp.chmod(0o755)
    try:
        build_tokenizer(tmp)
        build_model(tmp, seed)
        check(tmp)
        (tmp / STAMP).write_text(stamp_text(seed) + "\n")
        if outdir.exists():
            shutil.rmtree(outdir)
        tmp.rename(outdir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"[make_tiny_model] built {outdir} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
