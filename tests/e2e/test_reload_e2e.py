"""Live config reload: SIGHUP and POST /admin/reload under load drop nothing; in-flight
requests finish on the old routes; an invalid config is refused and the old one stays."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway_process import GatewayProcess


def replace_atomically(path: Path, text: str) -> None:
    staged = path.with_suffix(".tmp")
    staged.write_text(text)
    staged.replace(path)


def config(reply: str, extra_route: bool = False, long_route: bool = True) -> str:
    text = f"""
models:
  - name: a
    backend: mock
    mock: {{reply: "{reply}", stream_delay_ms: 2}}
"""
    if long_route:
        text += "  - {name: long, backend: mock, mock: {stream_delay_ms: 40}}\n"
    if extra_route:
        text += "  - {name: b, backend: mock}\n"
    return text


@pytest.fixture()
def gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Path]]:
    proc = GatewayProcess(config("first answer"), tmp_path).wait_ready()
    yield proc, tmp_path / f"gateway-{proc.port}.yaml"
    proc.stop()


def test_reload_under_load_drops_nothing(gateway: tuple[GatewayProcess, Path]) -> None:
    proc, path = gateway
    stop = threading.Event()
    failures: list[str] = []
    counts = {"json": 0, "stream": 0}
    lock = threading.Lock()

    def load(streaming: bool) -> None:
        with httpx.Client(base_url=proc.url, timeout=20) as client:
            while not stop.is_set():
                body = {"model": "a", "messages": [{"role": "user", "content": "x"}]}
                try:
                    if streaming:
                        body["stream"] = True
                        with client.stream("POST", "/v1/chat/completions", json=body) as r:
                            text = r.read().decode()
                        ok = r.status_code == 200 and text.endswith("data: [DONE]\n\n")
                        ok = ok and '"error"' not in text
                    else:
                        r = client.post("/v1/chat/completions", json=body)
                        text = r.text
                        ok = r.status_code == 200 and "answer" in text
                except httpx.HTTPError as exc:
                    ok, text = False, repr(exc)
                with lock:
                    counts["stream" if streaming else "json"] += 1
                    if not ok:
                        failures.append(text[:300])

    threads = [threading.Thread(target=load, args=(i % 2 == 1,)) for i in range(8)]
    for thread in threads:
        thread.start()
    try:
        with httpx.Client(base_url=proc.url, timeout=20) as admin:
            for n in range(12):
                time.sleep(0.1)
                # Renamed into place, as deploy tools do: a SIGHUP can arrive mid-write, and
                # a reload of a half-written file is (rightly) refused.
                replace_atomically(path, config(f"answer {n}", extra_route=n % 2 == 0))
                if n % 3 == 2:
                    proc.proc.send_signal(signal.SIGHUP)
                else:
                    reply = admin.post("/admin/reload")
                    assert reply.status_code == 200, reply.text
                    summary = reply.json()
                    assert summary["status"] == "reloaded"
                    assert ("b" in summary["routes"]) == (n % 2 == 0)
            time.sleep(0.3)
            replace_atomically(path, config("final answer"))
            assert admin.post("/admin/reload").status_code == 200
            answer = admin.post(
                "/v1/chat/completions",
                json={"model": "a", "messages": [{"role": "user", "content": "x"}]},
            )  # a reload that answered 200 is in force for the next request
            assert answer.json()["choices"][0]["message"]["content"] == "final answer"
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert failures == []
    assert counts["json"] > 50 and counts["stream"] > 20, counts
    assert "SIGHUP reload refused" not in proc.log()


def test_in_flight_stream_finishes_on_the_removed_route(
    gateway: tuple[GatewayProcess, Path],
) -> None:
    proc, path = gateway
    words = " ".join(f"w{i}" for i in range(25))  # ~1 s at 40 ms a word
    body = {"model": "long", "stream": True, "messages": [{"role": "user", "content": words}]}
    result: dict[str, str] = {}

    in_flight = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", proc.url + "/v1/chat/completions", json=body, timeout=20) as r:
            chunks = r.iter_text()
            first = next(chunks)
            in_flight.set()
            result["text"] = first + "".join(chunks)

    thread = threading.Thread(target=stream)
    thread.start()
    assert in_flight.wait(20)  # the stream is open on the route about to be removed
    path.write_text(config("second", long_route=False))
    reply = httpx.post(proc.url + "/admin/reload", timeout=10)
    assert reply.json()["removed"] == ["long"]
    missing = httpx.post(proc.url + "/v1/chat/completions", json=body, timeout=10)
    assert missing.status_code == 404  # new requests see the new routes at once
    thread.join(20)
    text = result["text"]
    assert text.endswith("data: [DONE]\n\n") and '"error"' not in text
    assert text.count('"content":"') >= 25  # every word arrived
    deadline = time.monotonic() + 5
    while "generation 0 retired" not in proc.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "generation 0 retired" in proc.log()


def test_invalid_config_is_refused_and_the_old_one_stays(
    gateway: tuple[GatewayProcess, Path],
) -> None:
    proc, path = gateway
    path.write_text("models:\n  - name: a\n    backend: vllm\n")
    reply = httpx.post(proc.url + "/admin/reload", timeout=10)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_config"
    assert "route 'a' (models[0]): base_url is required for backend 'vllm'" in error["message"]
    proc.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "SIGHUP reload refused" not in proc.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "base_url is required" in proc.log().split("SIGHUP reload refused")[1]
    answer = httpx.post(
        proc.url + "/v1/chat/completions",
        json={"model": "a", "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    )
    assert answer.json()["choices"][0]["message"]["content"] == "first answer"
