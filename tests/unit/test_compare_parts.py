"""The comparison's pure parts: inputs, answer text, stream assembly, statistics, reports."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import orjson
import pytest

from gateway.compare.answers import answer_text, assemble_sse
from gateway.compare.client import Result, request_body
from gateway.compare.inputs import Case, InputError, load_cases
from gateway.compare.replay import differences, recorded_results
from gateway.compare.report_html import html
from gateway.compare.report_md import markdown, routes_table
from gateway.compare.stats import agreement, percentile, route_stats, similarity
from gateway.compare.svg import distribution, scatter


def _write(tmp_path: Path, lines: list[object]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n\n")
    return path


def test_every_input_shape_is_understood(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            {"messages": [{"role": "user", "content": "a"}], "model": "ignored"},
            {"input": "b", "id": "mine"},
            {"responses_create_params": {"input": "c"}, "id": 7},
            {"custom_id": "batch-1", "url": "/v1/chat/completions", "body": {"messages": []}},
            {"request_id": "req_1", "route": "r", "request": {"input": "d"}, "answer": None},
        ],
    )
    cases = load_cases(path)
    assert [c.endpoint for c in cases] == ["chat", "responses", "responses", "chat", "responses"]
    assert [c.id for c in cases] == ["line1", "mine", "7", "batch-1", "req_1"]
    assert "model" not in cases[0].body
    assert cases[4].recorded is not None and cases[0].recorded is None
    assert len(load_cases(path, limit=2)) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"prompt": "x"}, "not a request"),
        ({"request_id": "r", "route": "r", "request": {"seed": 1}}, "no request bodies"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_inputs_name_the_line(tmp_path: Path, line: object, message: str) -> None:
    with pytest.raises(InputError, match=rf"in.jsonl:1: .*{message}"):
        load_cases(_write(tmp_path, [line]))


def test_request_body_sets_route_and_stream_usage() -> None:
    case = Case(0, "x", "chat", {"messages": []})
    body = request_body(case, "r", True)
    assert body["model"] == "r" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_answer_text_for_chat_and_responses() -> None:
    chat = {
        "choices": [
            {
                "message": {
                    "content": "hi",
                    "tool_calls": [{"function": {"name": "f", "arguments": '{"a":1}'}}],
                }
            }
        ]
    }
    assert answer_text(chat) == 'hi\nf({"a":1})'
    responses = {
        "output": [
            {"type": "reasoning", "content": []},
            {"type": "message", "content": [{"type": "output_text", "text": "yo"}]},
            {"type": "function_call", "name": "g", "arguments": "{}"},
        ]
    }
    assert answer_text(responses) == "yo\ng({})"


def test_responses_stream_is_rebuilt_from_its_terminal_event() -> None:
    done = {"type": "response.completed", "response": {"output": [
        {"type": "message", "content": [{"text": "final"}]}]}}  # fmt: skip
    raw = (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"delta":"fin"}\n\nevent: response.completed\ndata: ' + orjson.dumps(done) + b"\n\n"
    )
    assert answer_text(assemble_sse(raw)) == "final"


def test_percentile_interpolates() -> None:
    assert percentile([], 50) is None
    assert percentile([10.0], 99) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def _result(route: str, index: int, ok: bool = True, text: str = "a b", **kw: object) -> Result:
    base = dict(latency_ms=100.0 + index, tokens_in=10, tokens_out=20, fidelity="ok")
    base.update(kw)
    return Result(index, f"c{index}", route, 0, "chat", ok, 200 if ok else 503, text=text, **base)


def test_route_stats_costs_and_fidelity() -> None:
    results = [_result("a", i) for i in range(4)]
    results += [_result("b", i, fidelity="dropped=top_k") for i in range(3)]
    results += [_result("b", 3, ok=False, error="503 down")]
    stats = route_stats(results, ["a", "b"], {"a": (1.0, 2.0), "b": None})
    a, b = stats
    assert a.success_rate == 1 and b.ok == 3 and b.requests == 4
    assert a.cost == pytest.approx(4 * (10 * 1.0 + 20 * 2.0) / 1e6)
    assert a.cost_per_1k == pytest.approx(a.cost / 4 * 1000)
    assert b.cost is None
    assert a.fidelity_text() == "all honoured"
    assert b.fidelity_text() == "dropped top_k 3/4"
    assert b.errors["503 down"] == 1
    assert a.tokens_per_s == pytest.approx(80 / sum(100 + i for i in range(4)) * 1000)


def test_agreement_exact_and_similarity() -> None:
    results = [_result("a", 0, text="Hello  World"), _result("b", 0, text="hello world")]
    results += [_result("a", 1, text="x"), _result("b", 1, ok=False)]
    (pair,) = agreement(results, ["a", "b"])
    assert pair.compared == 1 and pair.exact == 0 and pair.mean_similarity == 1.0
    assert similarity("abc", "abd") == pytest.approx(2 / 3)


def test_reports_render_tables_and_plots() -> None:
    results = [_result(r, i) for r in ("a", "b") for i in range(5)]
    results[0].ttft_ms = 5.0
    stats = route_stats(results, ["a", "b"], {"a": (1.0, 1.0), "b": (2.0, 2.0)})
    pairs = agreement(results, ["a", "b"])
    table = routes_table(stats)
    assert table.splitlines()[0].startswith("| route | success | p50 ms")
    assert "| a | 100% (5/5) | 102.0 |" in table
    text = markdown("t", {"k": "v"}, stats, pairs)
    assert "## Agreement of answers" in text and "| a vs b | 5 | 100% (5/5) | 1.000 |" in text
    page = html("t", {"k": "v"}, stats, pairs)
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    for plot in ("plot-latency", "plot-ttft", "plot-cost-latency"):
        assert f'id="{plot}"' in page


def test_svg_plots_are_well_formed() -> None:
    for svg in (
        distribution("d", "t", "ms", [("a", [1.0, 2.0, 300.0]), ("b", [])]),
        scatter("s", "t", "x", "y", [("a", 10.0, 0.5, 20.0), ("b<", 1.0, 0.1, None)]),
    ):
        root = ElementTree.fromstring(svg)
        assert root.tag.endswith("svg")
        assert root.findall(".//{http://www.w3.org/2000/svg}circle")


def test_replay_differences_name_what_changed() -> None:
    record = {"request_id": "req_9", "route": "old", "status": 200, "latency_ms": 5,
              "fidelity": {"honoured": ["seed"]},
              "answer": {"choices": [{"message": {"content": "one two"}}]}}  # fmt: skip
    cases = [Case(0, "req_9", "chat", {"messages": []}, record)]
    (before,) = recorded_results(cases, "recorded:old")
    assert before.ok and before.text == "one two" and before.fidelity == "ok"
    after = _result("new", 0, text="one three")
    (diff,) = differences([before], [after])
    assert diff.similarity is not None and diff.similarity < 1
    assert any(line.startswith("+one three") for line in diff.diff)
    assert differences([before], [_result("new", 0, text="one two")]) == []
