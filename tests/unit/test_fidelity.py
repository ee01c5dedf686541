"""Parameter fidelity: verdicts from declared tables, the header, and the mock's simulation."""

from __future__ import annotations

import pytest

from backends.mock import MockDriver
from gateway import fidelity
from gateway.config import ConfigError, parse_config
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.fidelity import ParamRule, apply_table, judge, parse_header, rule_from_config

TABLE = {
    "top_k": ParamRule("drop"),
    "max_tokens": ParamRule("translate", to="max_completion_tokens"),
    "temperature": ParamRule("clamp", low=0.0, high=1.0),
    "logit_bias": ParamRule("refuse"),
}
BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 1.7,
    "top_p": 0.9,
    "top_k": 20,
    "max_tokens": 16,
    "logit_bias": {"1": 2},
}


def test_judge_sorts_every_parameter_into_its_group() -> None:
    verdict = judge(TABLE, BODY)
    assert verdict.honoured == ["top_p"]
    assert verdict.dropped == ["top_k"]
    assert verdict.refused == ["logit_bias"]
    assert verdict.clamped == {"temperature": [1.7, 1.0]}
    assert verdict.translated == {"max_tokens": "max_completion_tokens"}
    assert not verdict.ok
    assert verdict.header() == (
        "dropped=top_k;refused=logit_bias;clamped=temperature;"
        "translated=max_tokens>max_completion_tokens"
    )


def test_clamp_inside_the_range_is_honoured() -> None:
    verdict = judge(TABLE, {"temperature": 0.5})
    assert verdict.honoured == ["temperature"] and verdict.ok
    assert verdict.header() == "ok"


def test_route_overrides_and_defaults_are_reported() -> None:
    verdict = judge(None, {"temperature": 0.2, "seed": 1}, {"top_p": 0.95}, {"temperature": 0.6})
    assert verdict.overridden == {"temperature": [0.2, 0.6]}
    assert verdict.added == ["top_p"]
    assert verdict.honoured == ["seed"]
    # an override equal to what the client sent changes nothing
    assert judge(None, {"temperature": 0.6}, None, {"temperature": 0.6}).ok


def test_apply_table_does_what_the_verdict_says() -> None:
    sent = apply_table(TABLE, BODY)
    assert "top_k" not in sent and "max_tokens" not in sent
    assert sent["max_completion_tokens"] == 16
    assert sent["temperature"] == 1.0
    assert sent["logit_bias"] == {"1": 2}  # the driver owns the refusal message


def test_header_round_trip() -> None:
    header = judge(TABLE, BODY).header()
    parsed = parse_header(header)
    assert parsed["dropped"] == ["top_k"]
    assert parsed["translated"] == ["max_tokens>max_completion_tokens"]
    assert parse_header("ok") == {}


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("drop", ParamRule("drop")),
        ("honour", ParamRule("honour")),
        ({"translate": "x"}, ParamRule("translate", to="x")),
        ({"clamp": [0, 2]}, ParamRule("clamp", low=0, high=2)),
        ({"clamp": [None, 2]}, ParamRule("clamp", high=2)),
    ],
)
def test_rules_from_config(raw: object, rule: ParamRule) -> None:
    assert rule_from_config(raw) == rule


@pytest.mark.parametrize("raw", ["clamp", "explode", {"clamp": 3}, {"a": 1, "b": 2}, 7])
def test_bad_rules_are_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        rule_from_config(raw)


def test_bad_mock_params_are_a_config_error() -> None:
    text = "models:\n  - name: m\n    backend: mock\n    mock: {params: {top_k: explode}}\n"
    with pytest.raises(ConfigError, match=r"route 'm'.*params: unknown action 'explode'"):
        parse_config(text, "t.yaml")


class _FamilyTable:
    """The shape of backends/params.ParamTable (action by name)."""

    def action(self, name: str) -> str:
        return {"top_k": "refused", "max_tokens": "translated"}.get(name, "honoured")

    def get(self, name: str) -> None:
        return None


def test_family_tables_are_read_too() -> None:
    verdict = judge(_FamilyTable(), {"top_k": 3, "max_tokens": 5, "seed": 1})
    assert verdict.refused == ["top_k"] and verdict.translated == {"max_tokens": ""}
    assert verdict.header() == "refused=top_k;translated=max_tokens"
    dropped = judge(_FamilyTable(), {"top_k": 3}, drop_refused=True)
    assert dropped.dropped == ["top_k"]


def _mock(extra: str = "") -> MockDriver:
    config = parse_config(f"models:\n  - name: m\n    backend: mock\n{extra}", "t.yaml")
    return MockDriver(config.models[0])


def test_check_chat_fast_path_and_table() -> None:
    assert fidelity.check_chat(_mock(), BODY) is fidelity.OK
    assert fidelity.header_value(fidelity.OK) == "ok"
    driver = _mock("    mock: {params: {top_k: drop}}\n")
    assert fidelity.check_chat(driver, BODY).dropped == ["top_k"]


def test_check_responses_reports_the_translation_to_chat() -> None:
    verdict = fidelity.check_responses(_mock(), {"input": "hi", "max_output_tokens": 5})
    assert verdict.translated == {"max_output_tokens": "max_tokens"}
    assert fidelity.check_responses(_mock(), {"input": "hi", "temperature": 1}) is fidelity.OK


def test_full_verdict_lists_honoured_parameters_for_records() -> None:
    full = fidelity.full_verdict(fidelity.OK, {"messages": [], "temperature": 1, "seed": 2})
    assert full.as_dict() == {"honoured": ["temperature", "seed"]}


async def test_mock_applies_its_table_and_fails_every_nth() -> None:
    driver = _mock("    mock: {params: {max_tokens: drop}, fail_every: 2}\n")
    ctx = RequestContext(request_id="r")
    body = {"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 1}
    answer = await driver.chat(body, ctx)
    # max_tokens was dropped, so the whole echo came back
    assert answer["choices"][0]["message"]["content"] == "one two three"
    with pytest.raises(GatewayError) as failure:
        await driver.chat(body, ctx)
    assert failure.value.status == 503 and failure.value.code == "mock_failure"
    await driver.chat(body, ctx)
