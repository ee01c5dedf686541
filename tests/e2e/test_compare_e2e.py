"""`gym-gateway compare` end to end: three routes with planted behaviours give the expected
table; through a running gateway too; the HTML report renders in a real headless browser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.browser import CHROMIUM, chromium
from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
models:
  - name: slow
    backend: mock
    mock: {latency_ms: 120, stream_delay_ms: 5}
    price: {input_per_million: 0.1, output_per_million: 0.4}
  - name: dropper
    backend: mock
    mock: {params: {top_k: drop}}
    price: {input_per_million: 2.5, output_per_million: 10}
  - name: flaky
    backend: mock
    mock: {fail_every: 2}
"""


def write_requests(path: Path, count: int = 8) -> Path:
    lines = []
    for i in range(count):
        body = {
            "messages": [{"role": "user", "content": f"tell me about number {i}"}],
            "temperature": 0.7,
            "top_k": 20,
            "stream": i % 4 == 3,
        }
        lines.append(orjson.dumps(body))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def parse_table(markdown: str, first_header: str) -> dict[str, dict[str, str]]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("compare")
    (work / "routes.yaml").write_text(CONFIG)
    requests = write_requests(work / "requests.jsonl")
    out = work / "out"
    done = run_cli(
        "compare",
        "--config",
        str(work / "routes.yaml"),
        "--input",
        str(requests),
        "--routes",
        "slow,dropper,flaky",
        "--out",
        str(out),
        "--concurrency",
        "4",
    )
    assert done.returncode == 0, done.stderr
    return out, done


def test_compare_gives_the_expected_table(report: tuple[Path, subprocess.CompletedProcess]):
    out, done = report
    text = (out / "report.md").read_text()
    rows = parse_table(text, "route")
    assert list(rows) == ["slow", "dropper", "flaky"]
    slow, dropper, flaky = rows["slow"], rows["dropper"], rows["flaky"]
    assert slow["success"] == "100% (8/8)" and dropper["success"] == "100% (8/8)"
    assert flaky["success"] == "50% (4/8)"
    assert float(slow["p50 ms"].replace(",", "")) >= 120
    assert float(dropper["p50 ms"].replace(",", "")) < 100
    assert slow["TTFT p50 ms"] != "–" and float(slow["TTFT p50 ms"]) >= 120
    assert dropper["parameter fidelity"] == "dropped top_k 8/8"
    assert slow["parameter fidelity"] == "all honoured"
    # 8 requests × 5 prompt words, 8 × 5 echoed words
    assert (dropper["tokens in"], dropper["tokens out"]) == ("40", "40")
    assert float(dropper["est. cost $"]) == pytest.approx((40 * 2.5 + 40 * 10) / 1e6)
    assert flaky["est. cost $"] == "–"
    agree = parse_table(text, "routes")
    assert agree["slow vs dropper"]["exact match"] == "100% (8/8)"
    assert agree["dropper vs flaky"]["both answered"] == "4"
    assert "mock_failure" in text
    # the terminal shows the same table; the progress bar went to stderr
    assert "| slow | 100% (8/8) |" in done.stdout
    assert "compare [" in done.stderr and "24/24 100%" in done.stderr
    results = [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]
    assert len(results) == 24
    assert {r["route"] for r in results} == {"slow", "dropper", "flaky"}
    ok = [r for r in results if r["ok"]]
    assert all(r["text"].startswith("tell me about number") for r in ok)
    assert all(r["fidelity"] == "dropped=top_k" for r in results if r["route"] == "dropper")


def test_compare_through_a_running_gateway_and_an_upstream(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    config = f"""
models:
  - name: echo
    backend: mock
  - name: engine
    backend: vllm
    base_url: {upstream.base_url}
    upstream_model: ok
    price: {{input_per_million: 1, output_per_million: 1}}
"""
    (tmp_path / "prices.yaml").write_text(config)
    proc = GatewayProcess(config, tmp_path).wait_ready()
    try:
        done = run_cli(
            "compare",
            "--url",
            proc.url,
            "--config",
            str(tmp_path / "prices.yaml"),
            "--input",
            str(write_requests(tmp_path / "r.jsonl", 3)),
            "--routes",
            "echo,engine",
            "--out",
            str(tmp_path / "out"),
            "--repeat",
            "2",
            "--stream",
            "--quiet",
        )
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    rows = parse_table((tmp_path / "out" / "report.md").read_text(), "route")
    assert rows["echo"]["success"] == "100% (6/6)" and rows["engine"]["success"] == "100% (6/6)"
    # the scripted engine streams its five words and reports 5 + 5 tokens
    assert rows["engine"]["tokens out"] == "30" and rows["engine"]["est. cost $"] != "–"
    assert rows["engine"]["TTFT p50 ms"] != "–"
    agree = parse_table((tmp_path / "out" / "report.md").read_text(), "routes")
    assert agree["echo vs engine"]["exact match"] == "0% (0/6)"


def test_compare_refuses_unknown_routes_and_bad_input(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    requests = write_requests(tmp_path / "r.jsonl", 1)
    done = run_cli(
        "compare",
        "--config",
        str(tmp_path / "c.yaml"),
        "--input",
        str(requests),
        "--routes",
        "slow,nope",
        "--out",
        str(tmp_path / "o"),
    )
    assert done.returncode == 2 and "unknown route(s) nope" in done.stderr
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x"}\n')
    done = run_cli(
        "compare",
        "--config",
        str(tmp_path / "c.yaml"),
        "--input",
        str(tmp_path / "bad.jsonl"),
        "--routes",
        "slow",
        "--out",
        str(tmp_path / "o"),
    )
    assert done.returncode == 2 and "bad.jsonl:1: not a request" in done.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_report_renders_its_plots_in_a_browser(
    report: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    page = (report[0] / "report.html").resolve()
    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for plot in ("plot-latency", "plot-ttft", "plot-cost-latency"):
        assert f'<svg id="{plot}"' in html
    assert html.count('<circle class="dot"') >= 20  # one dot per successful request
    assert "<script" not in html
    # no JavaScript error, nothing blocked by the page's Content-Security-Policy
    for problem in ("Uncaught", "Refused to", "ERR_"):
        assert problem not in dom.stderr, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    done = chromium(
        "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()
    )
    assert done.returncode == 0 and shot.stat().st_size > 20_000
