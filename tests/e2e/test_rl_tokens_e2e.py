"""The RL token contract end to end: the real gateway process in front of a toy token engine
(tests/token_engine.py) that answers in vLLM's shapes with a real tokenizer.

Ports NeMo RL's shape and top_logprobs tests (nemo_gym.md §d rows 3b', 3c, 3e, 12) to the toy
model, plus the splice, contiguity and training checks through HTTP.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.rl_fixtures import (
    CAPTURE,
    PING,
    TOOLS,
    USER,
    assistant,
    chat,
    engine,
    error,
    gw,
    ok,
)
from tests.gateway_process import GatewayProcess
from tests.token_engine import IM_END, MAX_MODEL_LEN, REPLY, TOOL_REPLY, ToyEngine, render

__all__ = ["engine", "gw"]  # module-scoped fixtures used by the tests below


# ---- shapes (rows 3b', 3c, 12) ---------------------------------------------------------------


def test_3b_prime_bundle_on_the_message(gw: GatewayProcess, engine: ToyEngine) -> None:
    answer = ok(chat(gw, model="toy", messages=USER, max_tokens=3, **CAPTURE))
    message = answer["choices"][0]["message"]
    prompt = render(USER)
    assert message["prompt_token_ids"] == prompt
    assert message["generation_token_ids"] == REPLY[:3]
    logprobs = answer["choices"][0]["logprobs"]["content"]
    assert message["generation_log_probs"] == [e["logprob"] for e in logprobs]
    assert [e["token"] for e in logprobs] == [f"token_id:{t}" for t in REPLY[:3]]
    assert answer["choices"][0]["finish_reason"] == "length"
    # not asked: the transport copies stay null, as vLLM sends them
    assert answer["prompt_token_ids"] is None and answer["choices"][0]["token_ids"] is None
    # the engine got the prompt as ids, and no token fields in messages
    sent = engine.calls("/v1/chat/completions", "toy")[-1]
    assert sent["kv_transfer_params"] == {"prompt_token_ids": prompt}
    assert sent["return_token_ids"] is True


def test_return_token_ids_keeps_the_engine_copies(gw: GatewayProcess) -> None:
    answer = ok(chat(gw, model="toy", messages=USER, return_token_ids=True, **CAPTURE))
    message = answer["choices"][0]["message"]
    assert answer["prompt_token_ids"] == message["prompt_token_ids"]
    assert answer["choices"][0]["token_ids"] == message["generation_token_ids"] == REPLY


def test_3c_tokenize_matches_the_chat_prompt(gw: GatewayProcess, engine: ToyEngine) -> None:
    tokenized = httpx.post(
        engine.base_url.removesuffix("/v1") + "/tokenize", json={"model": "toy", "messages": USER}
    ).json()
    answer = ok(chat(gw, model="toy", messages=USER, **CAPTURE))
    assert answer["choices"][0]["message"]["prompt_token_ids"] == tokenized["tokens"]
    assert tokenized["count"] == len(tokenized["tokens"])


@pytest.mark.parametrize("top", [{}, {"top_logprobs": 0}])
def test_12_omitted_or_zero_top_logprobs_give_token_id_logprobs(
    gw: GatewayProcess, top: dict
) -> None:
    body = {"logprobs": True, "return_tokens_as_token_ids": True, **top}
    answer = ok(chat(gw, model="toy-train", messages=USER, **body))
    assert answer["choices"][0]["logprobs"]["content"][0]["token"].startswith("token_id:")


def test_3e_explicit_null_top_logprobs_is_400(gw: GatewayProcess) -> None:
    body = {"logprobs": True, "return_tokens_as_token_ids": True, "top_logprobs": None}
    err = error(chat(gw, model="toy-train", messages=USER, **body), 400)
    assert "top_logprobs" in err["message"] and err["param"] == "top_logprobs"


def test_always_route_adds_the_bundle_without_logprobs(gw: GatewayProcess) -> None:
    answer = ok(chat(gw, model="toy-always", messages=USER))
    assert answer["choices"][0]["message"]["generation_token_ids"] == REPLY
    assert answer["choices"][0]["logprobs"] is None  # not asked by the client


# ---- the splice through HTTP ------------------------------------------------------------------


def test_second_turn_keeps_the_generated_ids(gw: GatewayProcess, engine: ToyEngine) -> None:
    first = ok(chat(gw, model="toy", messages=USER, **CAPTURE))
    turn = assistant(first)
    history = [*USER, turn, {"role": "user", "content": "again"}]
    second = ok(chat(gw, model="toy", messages=history, **CAPTURE))
    prefix = turn["prompt_token_ids"] + turn["generation_token_ids"]
    prompt = second["choices"][0]["message"]["prompt_token_ids"]
    assert prompt[: len(prefix)] == prefix  # R4, with the model's own ids "Hel", "lo", ...
    # the engine's own rendering re-tokenizes the reply character by character: different
    clean = [*USER, {"role": "assistant", "content": turn["content"]}, history[2]]
    assert render(clean) != prompt
    # after the model's end of turn: the template's "\n" and the next turns
    through_turn = render(clean[:2], generation_prompt=False)  # ends on end-of-turn, "\n"
    assert prompt[len(prefix) :] == render(clean)[len(through_turn) - 1 :]
    sent = engine.calls("/v1/chat/completions", "toy")[-1]
    assert all("prompt_token_ids" not in m for m in sent["messages"])


def test_tool_call_turns_stay_contiguous(gw: GatewayProcess) -> None:
    messages: list[dict[str, Any]] = list(USER)
    previous: list[int] = []
    for step in range(4):
        forced = {"tool_choice": PING} if step % 2 == 0 else {}
        answer = ok(
            chat(gw, model="toy-train", messages=messages, tools=TOOLS, **forced, **CAPTURE)
        )
        turn = assistant(answer)
        assert turn["prompt_token_ids"][: len(previous)] == previous
        assert turn["generation_token_ids"] == (TOOL_REPLY if forced else REPLY)
        previous = turn["prompt_token_ids"] + turn["generation_token_ids"]
        messages.append(turn)
        if turn.get("tool_calls"):
            messages.append(
                {"role": "tool", "tool_call_id": turn["tool_calls"][0]["id"], "content": "pong"}
            )
        else:
            messages.append({"role": "user", "content": f"step {step}"})


def test_reasoning_stripped_by_the_template_still_splices(gw: GatewayProcess) -> None:
    # row 11 through HTTP: the toy template drops <think> once a user turn follows
    kwargs = {"chat_template_kwargs": {"enable_thinking": True}}
    first = ok(chat(gw, model="toy", messages=USER, **kwargs, **CAPTURE))
    turn = assistant(first)
    assert turn["reasoning"] == "hm"
    history = [*USER, {**turn, "reasoning_content": "hm"}, {"role": "user", "content": "go on"}]
    second = ok(chat(gw, model="toy", messages=history, **kwargs, **CAPTURE))
    prefix = turn["prompt_token_ids"] + turn["generation_token_ids"]
    assert second["choices"][0]["message"]["prompt_token_ids"][: len(prefix)] == prefix


def test_explicit_required_prefix(gw: GatewayProcess) -> None:
    # row 9's shape: the prefix ends inside the user turn, with ids of our choosing
    template = render(USER)
    user_end = template.index(IM_END)
    prefix = [*template[:3], 7777, 7778]
    body = {"required_prefix_token_ids": prefix, **CAPTURE}
    answer = ok(chat(gw, model="toy", messages=USER, **body))
    assert answer["choices"][0]["message"]["prompt_token_ids"] == prefix + template[user_end:]


def test_clamp_to_the_context_left(gw: GatewayProcess, engine: ToyEngine) -> None:
    ok(chat(gw, model="toy", messages=USER, max_tokens=10**6, **CAPTURE))
    sent = engine.calls("/v1/chat/completions", "toy")[-1]
    assert sent["max_tokens"] == MAX_MODEL_LEN - len(render(USER))


def test_prompt_over_the_context_is_a_context_length_400(gw: GatewayProcess) -> None:
    long = [{"role": "user", "content": "x" * MAX_MODEL_LEN}]
    err = error(chat(gw, model="toy", messages=long, **CAPTURE), 400)
    assert "context length" in err["message"]


def test_stream_with_capture_sends_the_token_prompt(gw: GatewayProcess, engine: ToyEngine) -> None:
    response = chat(gw, model="toy", messages=USER, stream=True, **CAPTURE)
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    sent = engine.calls("/v1/chat/completions", "toy")[-1]
    assert sent["stream"] is True
    assert sent["kv_transfer_params"] == {"prompt_token_ids": render(USER)}


# ---- guards and refusals ------------------------------------------------------------------------


def test_engine_that_ignores_the_token_prompt_is_409(gw: GatewayProcess) -> None:
    first = ok(chat(gw, model="toy", messages=USER, **CAPTURE))
    history = [*USER, assistant(first), {"role": "user", "content": "again"}]
    err = error(chat(gw, model="toy-ignores", messages=history, **CAPTURE), 409)
    assert err["code"] == "non_contiguous_prompt"


def test_engine_without_ids_is_502(gw: GatewayProcess) -> None:
    err = error(chat(gw, model="toy-no-ids", messages=USER, **CAPTURE), 502)
    assert err["code"] == "token_ids_missing"


def test_template_that_drops_history_is_a_splice_400(gw: GatewayProcess) -> None:
    messages: list[dict[str, Any]] = list(USER)
    for n in range(2):
        turn = assistant(ok(chat(gw, model="toy", messages=messages, **CAPTURE)))
        messages += [turn, {"role": "user", "content": f"more {n}"}]
    err = error(chat(gw, model="toy-window", messages=messages, **CAPTURE), 400)
    assert err["code"] == "token_splice_failed" and err["param"] == "messages"


def test_partial_bundle_is_400(gw: GatewayProcess) -> None:
    turn = {
        "role": "assistant",
        "content": "x",
        "prompt_token_ids": [1],
        "generation_token_ids": [2],
    }
    err = error(chat(gw, model="toy", messages=[*USER, turn, *USER], **CAPTURE), 400)
    assert err["param"] == "messages[1]"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 0.7}, "temperature"),
        ({"top_p": 0.5}, "top_p"),
        ({"top_k": 20}, "top_k"),
        ({"n": 2}, "n"),
    ],
)
def test_training_route_refuses_other_sampling(gw: GatewayProcess, body: dict, param: str) -> None:
    err = error(chat(gw, model="toy-train", messages=USER, **body), 400)
    assert err["param"] == param


def test_training_route_pins_the_sampling(gw: GatewayProcess, engine: ToyEngine) -> None:
    ok(chat(gw, model="toy-train", messages=USER, temperature=1.0))
    sent = engine.calls("/v1/chat/completions", "toy")[-1]
    assert (sent["temperature"], sent["top_p"], sent["top_k"]) == (1.0, 1.0, -1)


@pytest.mark.parametrize("model", ["oa", "echo"])
def test_backends_without_real_ids_refuse(gw: GatewayProcess, model: str) -> None:
    err = error(chat(gw, model=model, messages=USER, **CAPTURE), 400)
    assert err["code"] == "token_ids_unsupported"


def test_plain_requests_never_render(gw: GatewayProcess, engine: ToyEngine) -> None:
    before = len(engine.calls("/tokenize"))
    ok(chat(gw, model="toy", messages=USER, logprobs=True))
    assert len(engine.calls("/tokenize")) == before
    assert "kv_transfer_params" not in engine.calls("/v1/chat/completions", "toy")[-1]


def test_passthrough_route_forwards_the_fields(gw: GatewayProcess, engine: ToyEngine) -> None:
    turn = {
        "role": "assistant",
        "content": "x",
        "prompt_token_ids": [1],
        "generation_token_ids": [2],
        "generation_log_probs": [-1.0],
    }
    ok(
        chat(
            gw,
            model="toy-pass",
            messages=[*USER, turn, *USER],
            required_prefix_token_ids=[1, 2],
            **CAPTURE,
        )
    )
    sent = engine.calls("/v1/chat/completions", "toy")[-1]
    assert sent["required_prefix_token_ids"] == [1, 2]
    assert sent["messages"][1]["prompt_token_ids"] == [1]
    assert "kv_transfer_params" not in sent
