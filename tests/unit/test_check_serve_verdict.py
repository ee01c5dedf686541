"""`gym-gateway check` and `serve` give one verdict on a config (issue 18 item 8): each bad
key setup is exit 2 with one line naming the file and the field, in both commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main as cli_main

ROUTES = "models:\n  - {name: echo, backend: mock}\n"


def _config(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"server:\n{server}\n{ROUTES}")
    return path


def _key_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    return path


CASES = {
    "missing file": (None, "cannot read the API key file"),
    "empty file": ("", "holds no keys"),
    "empty list": ("[]\n", "holds no keys"),
    "not a list": ("{name: k}\n", "must be a YAML list"),
    "key without a key": ("- {name: k}\n", "key: Field required"),
    "unknown route": ("- {name: k, key: abcdefghij, routes: [nope]}\n", "unknown routes: nope"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["check", "serve"])
def test_bad_key_file_is_exit_2_in_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    text, expected = CASES[case]
    keys = tmp_path / "absent.yaml" if text is None else _key_file(tmp_path, text)
    config = _config(tmp_path, f"  api_keys_file: {keys}")
    assert cli_main([command, "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert str(config.name) in err and "server.api_keys_file" in err and str(keys) in err
    assert expected in err


@pytest.mark.parametrize("command", ["check", "serve"])
def test_inline_key_naming_unknown_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = _config(tmp_path, "  api_keys: [{name: k, key: abcdefghij, routes: [echo, nope]}]")
    assert cli_main([command, "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "server.api_keys[0].routes" in err and "unknown routes: nope" in err


def test_good_key_file_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = _key_file(tmp_path, "- {name: k, key: abcdefghij, routes: [echo]}\n")
    config = _config(tmp_path, f"  api_keys_file: {keys}")
    assert cli_main(["check", "--config", str(config)]) == 0
    assert "config OK" in capsys.readouterr().out
