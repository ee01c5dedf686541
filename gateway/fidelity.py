"""Parameter fidelity: which request parameters a route honoured, translated, clamped or dropped.

The interface with the drivers (backends/<family>.py) is one declared table per driver:

    class MyDriver(Driver):
        param_table: ParamTable = {
            "top_k": ParamRule("drop", note="OpenAI has no top_k"),
            "max_tokens": ParamRule("translate", to="max_completion_tokens"),
            "temperature": ParamRule("clamp", low=0.0, high=2.0),
            "logit_bias": ParamRule("refuse"),
        }

Parameters a table does not name are forwarded as sent ("honoured"). A driver applies its
table with `apply_table` (so what it does and what it reports come from the same data), and
the handlers report with `check_chat` / `check_responses`: the verdict goes into the
`x-gateway-param-fidelity` header, the recording and the comparison report. Route `defaults`
and `overrides` count too: an override that replaced the client's value is "overridden", a
parameter the route set that the client did not send is "added".

The family drivers' own tables (`backends/params.py`: honoured / translated / refused, an
`unknown` policy, and the route's `unsupported_params: drop`) are read the same way: any
object with `action(name)` and `get(name)` works, so a driver only needs a `param_table`
attribute holding either kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

HEADER = "x-gateway-param-fidelity"

Action = Literal["honour", "translate", "clamp", "drop", "refuse"]
ACTIONS: tuple[str, ...] = ("honour", "translate", "clamp", "drop", "refuse")
# Verdict groups in header order (most important first); "honoured" is left out of the header.
GROUPS = ("dropped", "refused", "clamped", "overridden", "translated", "added")

# Body keys that carry the conversation or the transport, not a generation parameter.
NOT_PARAMS = frozenset({"model", "messages", "input", "instructions", "prompt", "tools", "stream"})


@dataclass(frozen=True, slots=True)
class ParamRule:
    """What a driver does with one request parameter."""

    action: Action
    to: str | None = None  # translate: the upstream's name for it (None: rewritten in place)
    low: float | None = None  # clamp: the accepted range (either bound may be open)
    high: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; use one of {', '.join(ACTIONS)}")
        if self.action == "clamp" and self.low is None and self.high is None:
            raise ValueError("a 'clamp' rule needs a range: [low, high] (null for an open end)")


ParamTable = Mapping[str, ParamRule]
_REFUSE = ParamRule("refuse")
_DROP = ParamRule("drop")


def rule_for(table: Any, name: str, drop_refused: bool = False) -> ParamRule | None:
    """The rule for one parameter from either kind of table (None: honoured as sent)."""
    if not table:
        return None
    if isinstance(table, Mapping):
        rule = table.get(name)
    else:  # backends/params.ParamTable
        action = table.action(name)
        if action == "honoured":
            return None
        rule = ParamRule("translate") if action == "translated" else _REFUSE
    if drop_refused and rule is not None and rule.action == "refuse":
        return _DROP
    return rule


def rule_from_config(value: Any) -> ParamRule:
    """A rule from YAML: `drop`, `honour`, `refuse`, {translate: NAME} or {clamp: [LOW, HIGH]}."""
    if isinstance(value, str):
        if value in ("translate", "clamp"):
            raise ValueError(f"'{value}' needs an argument: {{{value}: ...}}")
        return ParamRule(value)  # type: ignore[arg-type]
    if isinstance(value, dict) and len(value) == 1:
        ((action, arg),) = value.items()
        if action == "translate" and isinstance(arg, str):
            return ParamRule("translate", to=arg)
        if action == "clamp" and isinstance(arg, list | tuple) and len(arg) == 2:
            low, high = arg
            return ParamRule("clamp", low=low, high=high)
    raise ValueError(
        f"invalid parameter rule {value!r}: use drop, honour, refuse, "
        "{translate: NAME} or {clamp: [LOW, HIGH]}"
    )


def table_from_config(raw: Mapping[str, Any]) -> dict[str, ParamRule]:
    return {name: rule_from_config(value) for name, value in raw.items()}


def _clamped(rule: ParamRule, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if rule.low is not None and value < rule.low:
        return rule.low
    if rule.high is not None and value > rule.high:
        return rule.high
    return value


def apply_table(table: ParamTable, body: dict[str, Any]) -> dict[str, Any]:
    """The body a driver sends: dropped parameters removed, translated ones renamed, values
    clamped. Refused parameters are left for the driver to reject (it owns the message)."""
    if not table:
        return body
    out: dict[str, Any] = {}
    for key, value in body.items():
        rule = table.get(key)
        if rule is None or rule.action in ("honour", "refuse"):
            out[key] = value
        elif rule.action == "translate":
            out[rule.to or key] = value
        elif rule.action == "clamp":
            out[key] = _clamped(rule, value)
    return out


@dataclass(slots=True)
class Verdict:
    honoured: list[str] = field(default_factory=list)
    translated: dict[str, str] = field(default_factory=dict)  # sent name -> upstream name
    clamped: dict[str, list[Any]] = field(default_factory=dict)  # name -> [sent, used]
    dropped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    overridden: dict[str, list[Any]] = field(default_factory=dict)  # name -> [sent, used]
    added: list[str] = field(default_factory=list)  # set by the route, not sent by the client

    @property
    def ok(self) -> bool:
        return not any(getattr(self, group) for group in GROUPS)

    def header(self) -> str:
        """Compact: `ok`, or `dropped=top_k,seed;translated=max_tokens>max_completion_tokens`."""
        parts = []
        for group in GROUPS:
            value = getattr(self, group)
            if not value:
                continue
            if group == "translated":
                names = ",".join(f"{k}>{v}" if v else k for k, v in value.items())
            else:
                names = ",".join(value)
            parts.append(f"{group}={names}")
        return ";".join(parts) or "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            g: getattr(self, g) for g in ("honoured", *GROUPS) if getattr(self, g)
        }  # fmt: skip


def parse_header(value: str) -> dict[str, list[str]]:
    """The header back into {group: [parameter, ...]} (translations as `a>b`)."""
    out: dict[str, list[str]] = {}
    if not value or value == "ok":
        return out
    for part in value.split(";"):
        group, _, names = part.partition("=")
        if group and names:
            out[group.strip()] = [n for n in names.split(",") if n]
    return out


def params_of(body: Mapping[str, Any]) -> list[str]:
    return [k for k in body if k not in NOT_PARAMS]


def judge(
    table: Any,
    body: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    renames: Mapping[str, str] | None = None,
    drop_refused: bool = False,
) -> Verdict:
    """The verdict for one request. `table` is a ParamTable mapping or a backends/params
    ParamTable; `renames` maps a client parameter to the name the gateway itself gives it
    before the driver sees it (Responses -> Chat translation); `drop_refused` is the route's
    `unsupported_params: drop`."""
    overrides = overrides or {}
    verdict = Verdict()
    for key in params_of(body):
        value = body[key]
        name = renames.get(key, key) if renames else key
        if name in overrides and overrides[name] != value:
            verdict.overridden[key] = [value, overrides[name]]
            continue
        rule = rule_for(table, name, drop_refused)
        action = rule.action if rule is not None else "honour"
        if action == "drop":
            verdict.dropped.append(key)
        elif action == "refuse":
            verdict.refused.append(key)
        elif action == "clamp" and _clamped(rule, value) != value:  # type: ignore[arg-type]
            verdict.clamped[key] = [value, _clamped(rule, value)]  # type: ignore[arg-type]
        elif action == "translate":
            verdict.translated[key] = rule.to or (name if name != key else "")  # type: ignore[union-attr]
        elif name != key:
            verdict.translated[key] = name
        else:
            verdict.honoured.append(key)
    sent = {renames.get(k, k) if renames else k for k in body}
    for key in (*(defaults or ()), *overrides):
        if key not in sent and key not in NOT_PARAMS and key not in verdict.added:
            verdict.added.append(key)
    return verdict


# Responses parameters the gateway renames on its way to a Chat backend (gateway/translate).
def responses_renames(max_tokens_field: str) -> dict[str, str]:
    return {
        "max_output_tokens": max_tokens_field,
        "reasoning": "reasoning_effort",
        "text": "response_format",
        "include": "logprobs",
    }


# The shared verdict for the common case: no table, no route defaults or overrides.
OK = Verdict()


def header_value(verdict: Verdict) -> str:
    return "ok" if verdict is OK else verdict.header()


def _route_shapes(driver: Any) -> tuple[Any, dict[str, Any], dict[str, Any], bool, bool]:
    """(table, defaults, overrides, drop refused, nothing to report), computed once per
    driver: drivers live as long as their config, and this runs on every request."""
    cache = getattr(driver, "__dict__", {})  # a driver with __slots__ just recomputes
    shape = cache.get("_fidelity_shape")
    if shape is None:
        route = driver.route
        table = getattr(driver, "param_table", None) or None
        drop = getattr(route, "unsupported_params", None) == "drop"
        quiet = table is None and not route.defaults and not route.overrides
        shape = (table, route.defaults, route.overrides, drop, quiet)
        cache["_fidelity_shape"] = shape
    return shape


def check_chat(driver: Any, body: Mapping[str, Any]) -> Verdict:
    """The verdict for a Chat request on `driver` (cheap when the route changes nothing)."""
    table, defaults, overrides, drop, quiet = _route_shapes(driver)
    if quiet:
        return OK
    return judge(table, body, defaults, overrides, drop_refused=drop)


def check_responses(driver: Any, body: Mapping[str, Any]) -> Verdict:
    """The verdict for a Responses request: native pass-through, or translated to Chat."""
    table, defaults, overrides, drop, quiet = _route_shapes(driver)
    if getattr(driver, "native_responses", False):
        return OK if quiet else judge(table, body, defaults, overrides, drop_refused=drop)
    dialect = getattr(driver, "dialect", None)
    renames = responses_renames(getattr(dialect, "max_tokens_field", "max_tokens"))
    if quiet and not renames.keys() & body.keys():
        return OK
    return judge(table, body, defaults, overrides, renames, drop)


def check_completions(driver: Any, body: Mapping[str, Any]) -> Verdict:
    """The verdict for a legacy Completions request: the body passes on with the route's
    defaults and overrides; the parameter table (a Chat table) is not applied, except by a
    driver that says so (the mock applies its `mock.params` to every endpoint)."""
    table, defaults, overrides, drop, quiet = _route_shapes(driver)
    if quiet:
        return OK
    if not getattr(driver, "table_on_completions", False):
        table = None
    return judge(table, body, defaults, overrides, drop_refused=drop)


def full_verdict(verdict: Verdict | None, body: Mapping[str, Any] | None) -> Verdict:
    """The shared OK verdict made explicit (its honoured list) for a record."""
    if verdict is None or verdict is OK:
        return Verdict(honoured=params_of(body) if body else [])
    return verdict
