"""Declared parameter tables: what each backend family honours, translates or refuses.

Each family module holds one `ParamTable` (plain data). The request path applies it here,
`backends/capabilities.py` renders it into docs/backends.md, and a fidelity report can read
it too, so the three never disagree.

* honoured: sent as the client wrote it.
* translated: rewritten into the family's own form by the entry's `translate` function (or by
  the driver itself when `translate` is None); a value it cannot express raises NotSupported.
* refused: a 400 naming the parameter (`unsupported_parameter`), or, when the route says
  `unsupported_params: drop`, removed and named in the `x-gateway-dropped-params` header.

A parameter no entry names follows the table's `unknown` policy: "pass" (engines that take
many extras: vLLM, SGLang, OpenAI) or "refuse" (whitelists: Gemini answers 400 to unknown
fields, TGI silently ignores them). A null value is never refused: it is simply removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter

HONOURED = "honoured"
TRANSLATED = "translated"
REFUSED = "refused"
DROPPED_HEADER = "x-gateway-dropped-params"

Translate = Callable[[dict[str, Any], Any], None]


class NotSupported(Exception):
    """A translation cannot express this value; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    action: str
    note: str = ""
    translate: Translate | None = None
    to: str | None = None  # translated: the field the engine receives (None: nothing is sent)


def honoured(name: str, note: str = "") -> Param:
    return Param(name, HONOURED, note)


def translated(
    name: str, note: str, translate: Translate | None = None, to: str | None = None
) -> Param:
    return Param(name, TRANSLATED, note, translate, to)


def refused(name: str, note: str) -> Param:
    return Param(name, REFUSED, note)


def honour_all(names: Iterable[str], note: str = "") -> list[Param]:
    return [honoured(n, note) for n in names]


def refuse_all(names: Iterable[str], note: str) -> list[Param]:
    return [refused(n, note) for n in names]


def rename(param: str, to: str) -> Translate:
    """Send the value under the engine's own name for the same thing."""

    def translate(body: dict[str, Any], value: Any) -> None:
        if body.get(to) is not None and body[to] != value:
            raise InvalidRequest(f"`{param}` and `{to}` mean the same here; send one", param=param)
        body[to] = value

    return translate


def remove(body: dict[str, Any], value: Any) -> None:
    """A translation that sends nothing: bookkeeping fields with no effect on the answer."""


@dataclass(frozen=True)
class ParamTable:
    family: str
    params: tuple[Param, ...]
    unknown: str = "pass"  # "pass" | "refuse"
    unknown_note: str = ""
    _index: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Param] = {}
        for param in self.params:
            if param.name in index:
                raise ValueError(f"{self.family}: parameter {param.name!r} is declared twice")
            index[param.name] = param
        object.__setattr__(self, "_index", index)

    def get(self, name: str) -> Param | None:
        return self._index.get(name)

    def action(self, name: str) -> str:
        """honoured / translated / refused, with unlisted names resolved by the policy."""
        param = self._index.get(name)
        if param is not None:
            return param.action
        return REFUSED if self.unknown == "refuse" else HONOURED

    def apply(self, body: dict[str, Any], drop: bool, route: str) -> list[str]:
        """Enforce the table on an outgoing chat body, in place; return the dropped names.

        Hot path: one dict lookup per top-level key; translations run only when present.
        """
        index = self._index
        refuse_unknown = self.unknown == "refuse"
        dropped: list[str] = []
        pending: list[tuple[Param, Any]] = []
        for key in list(body):
            param = index.get(key)
            if param is None:
                if refuse_unknown:
                    self._reject(body, key, self.unknown_note, drop, dropped, route)
                continue
            if param.action == HONOURED:
                continue
            if param.action == REFUSED:
                self._reject(body, key, param.note, drop, dropped, route)
            elif param.translate is not None:
                pending.append((param, body.pop(key)))
        for param, value in pending:
            if value is None:
                continue
            try:
                param.translate(body, value)  # type: ignore[misc]
            except NotSupported as exc:
                if not drop:
                    message = self._message(param.name, str(exc), route)
                    raise UnsupportedParameter(param.name, message) from None
                dropped.append(param.name)
        return dropped

    def _reject(
        self, body: dict[str, Any], key: str, note: str, drop: bool, dropped: list[str], route: str
    ) -> None:
        value = body.pop(key)
        if value is None:
            return
        if not drop:
            raise UnsupportedParameter(key, self._message(key, note, route))
        dropped.append(key)

    def _message(self, key: str, why: str, route: str) -> str:
        return (
            f"`{key}` is not supported on route '{route}' (backend {self.family}): {why} "
            "Remove it, or set `unsupported_params: drop` on the route to have it dropped "
            f"and named in the `{DROPPED_HEADER}` response header."
        )


class _FidelityView(Mapping[str, Any]):
    """A table seen as gateway/fidelity.py's `{name: ParamRule}` (its report reads this)."""

    def __init__(self, table: ParamTable, drop: bool, rule: Callable[..., Any]) -> None:
        self._rule = rule
        self._refused = rule("drop" if drop else "refuse")
        self._unknown = self._refused if table.unknown == "refuse" else None
        self._rules = {p.name: self._convert(p) for p in table.params}

    def _convert(self, param: Param) -> Any:
        if param.action == HONOURED or (param.action == TRANSLATED and param.translate is None):
            return self._rule("honour", note=param.note)
        if param.action == REFUSED:
            return self._refused
        if param.to is None:  # nothing is sent
            return self._rule("drop", note=param.note)
        if param.to == param.name:  # same field, value mapped (Gemini's effort levels)
            return self._rule("honour", note=param.note)
        return self._rule("translate", to=param.to, note=param.note)

    def __getitem__(self, name: str) -> Any:
        return self._rules[name]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._rules.get(name, self._unknown if self._unknown is not None else default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)


def fidelity_view(table: ParamTable, drop: bool) -> Mapping[str, Any]:
    """The table in gateway/fidelity.py's rule shape (empty if that module is absent)."""
    try:
        from gateway.fidelity import ParamRule
    except ImportError:  # the fidelity report is optional; enforcement never depends on it
        return {}
    return _FidelityView(table, drop, ParamRule)
