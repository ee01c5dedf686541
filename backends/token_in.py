"""Token-in/token-out on vLLM and SGLang routes: the RL training contract of NeMo RL and Gym.

A request that asks for token ids (`logprobs` + `return_tokens_as_token_ids`, a route with
`token_ids: always`, or a `required_prefix_token_ids`) or that goes to a `training` route
takes this path instead of the plain pass-through:

1. training routes check and pin the sampling parameters (gateway/tokens/sampling.py);
2. the token fields on messages are checked and stripped; the last bundle gives the prefix;
3. the engine renders the conversation with its own chat template, the gateway splices the
   model's exact ids in (gateway/tokens/splice.py) and clamps max_tokens to the context left;
4. the prompt goes to the engine as token ids (backends/token_engines.py);
5. the answer must echo exactly that prompt (the contiguity guard), and the engine's ids and
   log-probs land on `choices[0].message`.

Requests without these fields never reach this module (see `uses_token_path`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from typing import Any

from backends.base import ChatStream, Driver, PreparedChat
from backends.token_engines import ENGINES, TokenEngine
from gateway.config import RouteConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError, InvalidRequest
from gateway.tokens import (
    PREFIX_FIELD,
    MissingTokens,
    SamplingPin,
    SpliceError,
    TokenRequest,
    apply_training,
    attach_bundle,
    capture_requested,
    check_capture,
    clamp_max_tokens,
    extract_bundle,
    first_mismatch,
    read_token_request,
    splice_at_turn,
    wants_token_ids,
)
from gateway.tokens.answer import prompt_ids_of

# One engine per driver (it caches the end-of-turn id and the context length).
_ENGINES: weakref.WeakKeyDictionary[Driver, TokenEngine | None] = weakref.WeakKeyDictionary()


def uses_token_path(route: RouteConfig, body: dict[str, Any]) -> bool:
    """Cheap gate for the hot path: a route flag and two key lookups."""
    if route.tokens_forced:
        return True
    return ("return_tokens_as_token_ids" in body or PREFIX_FIELD in body) and (
        route.token_ids != "passthrough"
    )


def engine_for(driver: Driver) -> TokenEngine | None:
    """The route's token engine (built once per driver), or None for other backends."""
    if driver not in _ENGINES:
        cls = ENGINES.get(driver.route.backend)
        capable = hasattr(driver, "http") and hasattr(driver, "upstream")
        _ENGINES[driver] = cls(driver) if cls is not None and capable else None
    return _ENGINES[driver]


@dataclasses.dataclass(slots=True)
class Plan:
    body: dict[str, Any]
    client: dict[str, Any]
    capture: bool = False
    prompt: list[int] | None = None  # the ids sent as the prompt (checked against the echo)


def _unsupported(route: RouteConfig, body: dict[str, Any]) -> GatewayError:
    param = PREFIX_FIELD if body.get(PREFIX_FIELD) is not None else "return_tokens_as_token_ids"
    return InvalidRequest(
        f"route '{route.name}' (backend {route.backend}) cannot return the model's real token "
        "ids and log-probs, and the gateway never invents them. Use a vllm or sglang route "
        "for RL training, or drop return_tokens_as_token_ids / required_prefix_token_ids.",
        param=param,
        code="token_ids_unsupported",
    )


def _pins(route: RouteConfig) -> list[SamplingPin]:
    t = route.training
    assert t is not None
    pins = [SamplingPin(t.temperature, t.top_p)]
    if t.val_temperature is not None and t.val_top_p is not None:
        pins.append(SamplingPin(t.val_temperature, t.val_top_p))
    return pins


async def plan_request(
    driver: Driver, body: dict[str, Any], ctx: RequestContext, stream: bool
) -> Plan:
    """Checks, splice and token input for one chat body (not mutated)."""
    route = driver.route
    client = body
    if route.training is not None:
        body = apply_training(body, _pins(route))
    if route.token_ids == "passthrough":
        return Plan(body, client)
    engine = engine_for(driver)
    capture = capture_requested(body, route.token_ids == "always")
    if engine is None:
        if wants_token_ids(body):
            raise _unsupported(route, body)
        return Plan(body, client)
    if capture:
        check_capture(body)
    tr = read_token_request(body)
    out = {k: v for k, v in body.items() if k != PREFIX_FIELD}
    out["messages"] = tr.messages
    # route defaults and overrides count for the clamp; the driver does not apply them again
    out = PreparedChat(driver.prepare_chat(out))
    engine.clean(out)
    plan = Plan(out, client, capture)
    if capture or tr.required_prefix is not None:
        plan.prompt = await build_prompt(engine, tr, out, ctx)
        clamp_max_tokens(out, len(plan.prompt), await engine.model_len(ctx))
        engine.send_prompt(out, plan.prompt)
        engine.ask_ids(out, capture, stream)
    return plan


async def build_prompt(
    engine: TokenEngine, tr: TokenRequest, body: dict[str, Any], ctx: RequestContext
) -> list[int]:
    """The engine's rendering of the request, with the required prefix spliced in."""
    if tr.required_prefix is None:
        return await engine.render(tr.messages, body, ctx)
    full, turns, eos = await asyncio.gather(
        engine.render(tr.messages, body, ctx),
        engine.history_turns(tr, body, ctx),
        engine.eos_ids(body, ctx),
    )
    try:
        return splice_at_turn(tr.required_prefix, turns, full, eos)
    except SpliceError as exc:
        where = f"messages[{tr.source_index}]" if tr.source_index is not None else PREFIX_FIELD
        raise InvalidRequest(
            f"The token ids of {where} cannot be spliced into the conversation: {exc}. The "
            "messages sent must be the history those ids came from (not truncated, edited or "
            "re-ordered), and the chat template must keep every earlier turn.",
            param="messages" if tr.source_index is not None else PREFIX_FIELD,
            code="token_splice_failed",
        ) from None


def finish_answer(engine: TokenEngine, plan: Plan, answer: dict[str, Any], route: str) -> None:
    """The contiguity guard, then the bundle on `choices[0].message`."""
    client = plan.client
    if plan.prompt is None:
        return
    echoed = prompt_ids_of(answer)
    if echoed is None:
        raise GatewayError(
            502,
            f"route '{route}': the engine did not echo the prompt token ids, so the gateway "
            "cannot prove the prompt it used",
            code="token_ids_missing",
        )
    if echoed != plan.prompt:
        at = first_mismatch(echoed, plan.prompt)
        at = min(len(echoed), len(plan.prompt)) if at is None else at
        raise GatewayError(
            409,
            f"route '{route}': the engine's prompt_token_ids differ from the token prompt the "
            f"gateway sent (first difference at index {at}), so the previous turn's prompt + "
            "generation ids would not be a prefix of this turn's prompt. Check that the engine "
            "supports token input (docs/rl.md).",
            code="non_contiguous_prompt",
        )
    keep_transport = bool(client.get("return_token_ids"))
    if plan.capture:
        try:
            bundle = extract_bundle(answer)
        except MissingTokens as exc:
            raise GatewayError(
                502,
                f"route '{route}': the engine's answer lacks the token bundle: {exc}",
                code="token_ids_missing",
            ) from None
        attach_bundle(
            answer,
            bundle,
            keep_transport=keep_transport,
            keep_logprobs=client.get("logprobs") is True,
        )
        engine.finish(answer, client, bundle["generation_token_ids"])
    elif not keep_transport:
        attach_bundle(answer, {}, keep_transport=False, keep_logprobs=True)


class TokenPath:
    """Stands in for a driver on requests that use the token contract."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.route = driver.route

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    async def chat(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        plan = await plan_request(self._driver, body, ctx, stream=False)
        answer = await self._driver.chat(plan.body, ctx)
        engine = engine_for(self._driver)
        if engine is not None:
            finish_answer(engine, plan, answer, self.route.name)
        return answer

    async def open_chat_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        # Streams get the same checks and token prompt; the bundle is a non-streaming field.
        plan = await plan_request(self._driver, body, ctx, stream=True)
        return await self._driver.open_chat_stream(plan.body, ctx)


def reject_native(driver: Driver, body: dict[str, Any]) -> None:
    """Native /v1/responses pass-through cannot splice or return the bundle."""
    if uses_token_path(driver.route, body) and wants_token_ids(body):
        raise InvalidRequest(
            f"route '{driver.route.name}' sends /v1/responses upstream as is "
            "(native_responses), where the gateway cannot splice token ids or return the "
            "token bundle. Set native_responses: false on the route.",
            param="return_tokens_as_token_ids",
            code="token_ids_unsupported",
        )


async def tokenize(
    driver: Driver, body: dict[str, Any], ctx: RequestContext
) -> dict[str, Any] | None:
    """`POST /tokenize` with the prefix splice, or None when the body needs no splice.

    Same result as the prompt `/v1/chat/completions` would send for the same body.
    """
    if driver.route.token_ids == "passthrough" or not isinstance(body.get("messages"), list):
        return None
    engine = engine_for(driver)
    tr = read_token_request(body)
    if tr.required_prefix is None:
        return None
    if engine is None:
        raise _unsupported(driver.route, body)
    ids = await build_prompt(engine, tr, body, ctx)
    return {
        "count": len(ids),
        "max_model_len": await engine.model_len(ctx),
        "tokens": ids,
        "token_strs": None,
    }
