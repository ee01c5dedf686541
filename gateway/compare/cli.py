"""`gym-gateway compare` and `gym-gateway replay`: arguments, the run, the reports."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from gateway.compare.inputs import Case, InputError, load_cases
from gateway.config import CONFIG_ENV, GatewayConfig, load_config

if TYPE_CHECKING:  # not at run time: the client imports aiohttp, which `serve` never needs
    from gateway.compare.client import Result

API_KEY_ENV = "GYM_GATEWAY_API_KEY"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help=f"gateway config (routes, prices); default ${CONFIG_ENV}, else built-in"
    )
    parser.add_argument("--url", help="use a running gateway (http://HOST:PORT) instead")
    parser.add_argument(
        "--api-key", help=f"gateway API key for --url (default ${API_KEY_ENV})", default=None
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--limit", type=int, help="only the first N requests of the input")
    stream = parser.add_mutually_exclusive_group()
    stream.add_argument(
        "--stream",
        dest="stream",
        action="store_true",
        default=None,
        help="stream every request (measures TTFT)",
    )
    stream.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="never stream (default: as each request says)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_commands(sub: Any) -> None:
    compare = sub.add_parser(
        "compare", help="run the same requests on several routes and report the differences"
    )
    compare.add_argument("--input", required=True, help="JSONL of Chat/Responses requests")
    compare.add_argument("--routes", required=True, help="comma-separated route names")
    compare.add_argument("--out", required=True, help="directory for the reports")
    compare.add_argument("--repeat", type=int, default=1, help="send each request N times")
    _common(compare)

    replay = sub.add_parser("replay", help="re-send a recording to another route and diff")
    replay.add_argument("recording", help="a recording made with record_bodies: true")
    replay.add_argument("--route", required=True, help="the route to replay on")
    replay.add_argument("--out", help="directory for the reports (default: terminal only)")
    replay.add_argument(
        "--fail-on-diff", action="store_true", help="exit 1 when any answer differs"
    )
    _common(replay)


class UsageError(Exception):
    pass


def _config(args: argparse.Namespace) -> tuple[GatewayConfig | None, str | None]:
    path = args.config or os.environ.get(CONFIG_ENV)
    if args.url and not path:
        return None, None  # prices unknown; the running gateway knows its routes
    return load_config(path), path


def _prices(config: GatewayConfig | None) -> dict[str, tuple[float, float] | None]:
    if config is None:
        return {}
    return {
        r.name: (r.price.input_per_million, r.price.output_per_million) if r.price else None
        for r in config.models
    }


def _check_routes(config: GatewayConfig | None, routes: Sequence[str], url: str | None) -> None:
    if url or config is None:
        return
    known = [r.name for r in config.models]
    unknown = [r for r in routes if r not in known]
    if unknown:
        raise UsageError(
            f"unknown route(s) {', '.join(unknown)}; the config has {', '.join(known)}"
        )


def _target(
    config: GatewayConfig | None, path: str | None, url: str | None
) -> AbstractContextManager[Any]:
    if url:
        return nullcontext(url.rstrip("/").removesuffix("/v1"))
    from gateway.compare.server import InProcessGateway

    assert config is not None
    return InProcessGateway(config, os.path.abspath(path) if path else None)


def _execute(
    args: argparse.Namespace,
    config: GatewayConfig | None,
    path: str | None,
    cases: Sequence[Case],
    routes: Sequence[str],
    repeat: int,
    label: str,
) -> list[Result]:
    from gateway.compare.progress import Progress
    from gateway.compare.runner import run_cases

    total = len(cases) * len(routes) * repeat
    progress = None if args.quiet else Progress(total, label)
    api_key = args.api_key or os.environ.get(API_KEY_ENV)
    with _target(config, path, args.url) as target:
        base = target if isinstance(target, str) else target.url
        return asyncio.run(
            run_cases(
                base,
                cases,
                routes,
                max(1, args.concurrency),
                repeat,
                args.stream,
                api_key,
                args.timeout,
                progress,
            )
        )


def _meta(args: argparse.Namespace, cases: Sequence[Case], started: float) -> dict[str, str]:
    return {
        "input": str(getattr(args, "input", None) or getattr(args, "recording", "")),
        "requests": str(len(cases)),
        "target": args.url or "in-process gateway",
        "config": str(args.config or os.environ.get(CONFIG_ENV) or "built-in default"),
        "concurrency": str(args.concurrency),
        "stream": {None: "as each request says", True: "forced on", False: "forced off"}[
            args.stream
        ],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "duration": f"{time.monotonic() - started:.1f} s",
    }


def compare(args: argparse.Namespace) -> int:
    from gateway.compare.output import write_outputs
    from gateway.compare.report_md import agreement_table, routes_table
    from gateway.compare.stats import agreement, route_stats

    started = time.monotonic()
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if not routes:
        raise UsageError("--routes names no route")
    config, path = _config(args)
    _check_routes(config, routes, args.url)
    cases = load_cases(args.input, args.limit)
    repeat = max(1, args.repeat)
    results = _execute(args, config, path, cases, routes, repeat, "compare ")
    stats = route_stats(results, routes, _prices(config))
    pairs = agreement(results, routes)
    meta = _meta(args, cases, started)
    meta["repeat"] = str(repeat)
    paths = write_outputs(args.out, "gym-gateway comparison", meta, stats, pairs, results)
    print(routes_table(stats))
    if pairs:
        print()
        print(agreement_table(pairs))
    print(f"\nreports: {paths['report.md']}, {paths['report.html']}, {paths['results.jsonl']}")
    return 0


def replay(args: argparse.Namespace) -> int:
    from gateway.compare.output import write_outputs
    from gateway.compare.replay import (
        differences,
        differences_html,
        differences_markdown,
        recorded_label,
        recorded_results,
    )
    from gateway.compare.report_md import agreement_table, routes_table
    from gateway.compare.stats import agreement, route_stats

    started = time.monotonic()
    cases = load_cases(args.recording, args.limit)
    if any(c.recorded is None for c in cases):
        raise UsageError(f"{args.recording}: not a gateway recording (see `record:`)")
    config, path = _config(args)
    _check_routes(config, [args.route], args.url)
    label = recorded_label(cases)
    before = recorded_results(cases, label)
    after = _execute(args, config, path, cases, [args.route], 1, "replay ")
    routes = [label, args.route]
    prices = _prices(config)
    prices[label] = prices.get(label.removeprefix("recorded:"))
    stats = route_stats([*before, *after], routes, prices)
    pairs = agreement([*before, *after], routes)
    diffs = differences(before, after)
    print(routes_table(stats))
    print()
    print(agreement_table(pairs))
    print(f"\n{len(diffs)} of {len(cases)} requests differ")
    for d in diffs[:5]:
        print(
            f"  {d.case_id}: status {d.status[0]} -> {d.status[1]}, similarity "
            f"{'-' if d.similarity is None else f'{d.similarity:.3f}'}"
        )
    if args.out:
        meta = _meta(args, cases, started)
        meta["replayed on"] = args.route
        paths = write_outputs(
            args.out,
            f"gym-gateway replay on {args.route}",
            meta,
            stats,
            pairs,
            [*before, *after],
            differences_markdown(diffs, len(cases)),
            differences_html(diffs, len(cases)),
        )
        print(f"reports: {paths['report.md']}, {paths['report.html']}, {paths['results.jsonl']}")
    return 1 if diffs and args.fail_on_diff else 0


def run(args: argparse.Namespace) -> int:
    """Entry point from gateway/cli.py; config errors propagate (exit 2 there)."""
    try:
        return compare(args) if args.command == "compare" else replay(args)
    except (InputError, UsageError) as exc:
        print(f"gym-gateway {args.command}: {exc}", file=sys.stderr)
        return 2
