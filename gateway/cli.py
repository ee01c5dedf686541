"""`gym-gateway serve | check | compare | replay`: the command line."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import backends  # noqa: F401  (its drivers add their route checks to config validation)
from gateway import __version__
from gateway.config import CONFIG_ENV, ConfigError, GatewayConfig, load_config
from gateway.observe import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gym-gateway", description="OpenAI-compatible gateway for RL training and evals"
    )
    parser.add_argument("--version", action="version", version=f"gym-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the gateway")
    serve.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV}, else built-in)")
    serve.add_argument("--host", help="bind address (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")
    serve.add_argument("--workers", type=int, help="worker processes (overrides server.workers)")
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="overrides server.log_level",
    )

    check = sub.add_parser("check", help="validate a config file without serving")
    check.add_argument("--config", help=f"YAML config file (default: ${CONFIG_ENV}, else built-in)")

    from gateway.compare.cli import add_commands

    add_commands(sub)  # compare, replay
    return parser


def serve(
    config: GatewayConfig, config_path: str | None, overrides: dict[str, Any] | None = None
) -> None:
    import uvicorn

    from gateway.connections import GatewayHttpProtocol

    server = config.server
    configure_logging(server)
    common: dict[str, Any] = dict(
        host=server.host,
        port=server.port,
        # uvicorn's default 2,048 overflows when thousands of rollout workers connect at once
        backlog=server.backlog,
        log_level=server.log_level,
        access_log=server.access_log,
        loop="uvloop",
        # httptools plus header/body timeouts, a connection cap and lingering close
        http=GatewayHttpProtocol,
        # Gym keeps connections open; dropping idle ones costs retries
        timeout_keep_alive=server.keep_alive_s,
        timeout_graceful_shutdown=server.shutdown_grace_s,
        log_config=None,  # our handler (JSON or text) on the root logger serves uvicorn too
        server_header=False,
        # WebSocket mode (docs/responses.md): per-message deflate cost ~35 µs of CPU per event
        # (a third of a mock turn's); gateway clients are on a LAN or loopback
        ws_per_message_deflate=False,
    )
    if server.workers > 1:
        # Each worker process loads the same config from the environment.
        if config_path:
            os.environ[CONFIG_ENV] = os.path.abspath(config_path)
        overrides = {"HOST": server.host, "PORT": str(server.port)}
        for key, value in overrides.items():
            os.environ[f"GYM_GATEWAY_SERVER__{key}"] = value
        uvicorn.run(
            "gateway.app:create_app_from_env", factory=True, workers=server.workers, **common
        )
        return
    from gateway.app import create_app, tune_gc

    # The app remembers the file and the flags: SIGHUP and POST /admin/reload load them again.
    path = os.path.abspath(config_path) if config_path else None
    app = create_app(config, path, overrides, reload_signal=True)
    tune_gc()
    uvicorn.run(app, **common)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            config = load_config(args.config)
            names = ", ".join(f"{r.name} ({r.backend})" for r in config.models)
            print(f"config OK: {len(config.models)} routes: {names}")
            return 0
        if args.command in ("compare", "replay"):
            from gateway.compare.cli import run

            return run(args)
        overrides = dict(
            host=args.host, port=args.port, workers=args.workers, log_level=args.log_level
        )
        config = load_config(args.config, **overrides)
        # what the app builds from a config (routes, key digests, recording files) can still
        # refuse it: the same one-line verdict and exit code, not a traceback
        serve(config, args.config, overrides)
    except ConfigError as exc:
        print(f"gym-gateway: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
