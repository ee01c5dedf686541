"""`gym-gateway replay`: a recording re-sent to another route shows the planted difference."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.test_compare_e2e import parse_table, run_cli
from tests.e2e.test_recording_e2e import wait_lines
from tests.gateway_process import GatewayProcess


def test_replay_shows_the_planted_difference(tmp_path: Path) -> None:
    config = f"""
models:
  - name: base
    backend: mock
    record: {tmp_path}/base.jsonl
    record_bodies: true
  - name: capped
    backend: mock
    mock: {{params: {{max_tokens: {{clamp: [0, 3]}}}}}}
"""
    (tmp_path / "gateway.yaml").write_text(config)
    proc = GatewayProcess(config, tmp_path).wait_ready()
    ids = []
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            for i, words in enumerate(["one", "two words", "three short words"]):
                body = {"model": "base", "messages": [{"role": "user", "content": words}]}
                body["stream"] = i == 1
                ids.append(client.post("/v1/chat/completions", json=body).headers["x-request-id"])
            planted = {
                "model": "base",
                "messages": [{"role": "user", "content": "a long answer of seven words"}],
                "max_tokens": 10,  # the capped route clamps this to 3: the planted difference
            }
            ids.append(client.post("/v1/chat/completions", json=planted).headers["x-request-id"])
            ids.append(
                client.post("/v1/responses", json={"model": "base", "input": "hi"}).headers[
                    "x-request-id"
                ]
            )
    finally:
        proc.stop()
    assert len(wait_lines(tmp_path / "base.jsonl", 5)) == 5

    # in-process replay on the capped route, with the same config file
    done = run_cli(
        "replay",
        str(tmp_path / "base.jsonl"),
        "--route",
        "capped",
        "--config",
        str(tmp_path / "gateway.yaml"),
        "--out",
        str(tmp_path / "out"),
        "--fail-on-diff",
        "--quiet",
    )
    assert done.returncode == 1, done.stderr
    assert "1 of 5 requests differ" in done.stdout
    report = (tmp_path / "out" / "report.md").read_text()
    rows = parse_table(report, "route")
    assert rows["recorded:base"]["success"] == "100% (5/5)"
    assert rows["capped"]["parameter fidelity"] == "clamped max_tokens 1/5"
    assert f"### {ids[3]}" in report
    assert "-a long answer of seven words" in report and "+a long answer" in report
    assert "fidelity `ok` → `clamped=max_tokens`" in report
    assert "<h2>Differences</h2>" in (tmp_path / "out" / "report.html").read_text()

    # replaying on the recorded route itself finds nothing to report
    same = run_cli(
        "replay",
        str(tmp_path / "base.jsonl"),
        "--route",
        "base",
        "--config",
        str(tmp_path / "gateway.yaml"),
        "--fail-on-diff",
        "--quiet",
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert "0 of 5 requests differ" in same.stdout


def test_replay_needs_bodies(tmp_path: Path) -> None:
    (tmp_path / "rec.jsonl").write_text(
        '{"request_id": "r1", "route": "a", "request": {"model": "a", "seed": 1}}\n'
    )
    done = run_cli("replay", str(tmp_path / "rec.jsonl"), "--route", "echo")
    assert done.returncode == 2 and "record_bodies: true" in done.stderr
