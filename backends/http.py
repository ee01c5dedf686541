"""The one shared upstream HTTP client: pools, retries, timeouts, streaming, cancellation.

Plain-http upstreams (the local engines, the RL hot path) go through backends/h1.py, a
minimal HTTP/1.1 client on httptools: ~15 µs of CPU per request against aiohttp's ~80.
https upstreams (OpenAI, Gemini) and the health and admin calls use aiohttp, not httpx: on
this project's hot path a proxy built on aiohttp served 5,200 req/s, on httpx 270 req/s
(see bench/). Drivers never touch either client directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from backends.base import ChatStream
from backends.control import ControlPlane
from backends.h1 import H1Client, H1Error, H1Response, Target, TooLarge, Unreachable, encode_headers
from backends.pool import Pool, Replica, safe_origin
from backends.retry import backoff_delay, retry_after_seconds
from backends.upstream_errors import normalize_upstream_error
from gateway.config import RouteConfig, Timeouts
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.policies import RetryPolicy
from gateway.redact import redact_bytes
from gateway.sse import DONE, EventTooLarge, SSEParser

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("gateway.upstream")

# Upstream answer headers worth passing on to the client.
PASSED_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry")
PASSED_PREFIXES = ("x-ratelimit-",)
__all__ = ["AnswerLimits", "StreamBroken", "Upstream", "UpstreamHTTP", "safe_origin"]


@dataclass(frozen=True, slots=True)
class AnswerLimits:
    """What one upstream answer may hold (server.upstream_max_answer_bytes and
    upstream_max_event_bytes; the defaults are gateway/config.py's)."""

    answer_bytes: int = 64 * 1024 * 1024
    event_bytes: int = 16 * 1024 * 1024


DEFAULT_LIMITS = AnswerLimits()


class UpstreamBody(Protocol):
    async def readany(self) -> bytes: ...


class UpstreamResponse(Protocol):
    """An upstream answer as both clients give it: backends/h1.py's H1Response (plain http)
    and aiohttp's ClientResponse (https). Past this seam the code does not care which."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content_type(self) -> str: ...

    @property
    def content(self) -> UpstreamBody: ...  # the body as it arrives: `await .readany()`

    def release(self) -> Any: ...  # done with it: the connection goes back to the pool

    def close(self) -> None: ...  # the rest is never read: the connection is closed


class StreamBroken(GatewayError):
    """The upstream failed after the stream had started: end it with an error event."""


def client_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    import aiohttp

    return aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.idle)


def client_errors() -> tuple[type[BaseException], ...]:
    """What a failed upstream read raises: aiohttp's errors only once aiohttp is in use
    (it is imported lazily: ~10 MiB and ~0.1 s of start-up that plain-http routes never
    need)."""
    aiohttp = sys.modules.get("aiohttp")
    return (aiohttp.ClientError, H1Error, OSError) if aiohttp else (H1Error, OSError)


# A transport failure -> what the client is told, for both clients (h1 and aiohttp), in one
# place (as httpx's transports map their exceptions once). By when it happened: what a
# timeout means (504 upstream_timeout) and what any other failure means (502 upstream_error);
# a connection that could not be made is 502 upstream_unreachable with the OS's reason.
TRANSPORT_FAILURES = {
    "send": ("sent no answer in time", "failed before answering"),
    "read": ("stopped answering", "broke off its answer"),
    "stream": ("stalled mid-stream (idle timeout)", "broke off the stream"),
}


def transport_error(exc: BaseException, where: str, phase: str) -> GatewayError:
    """The client's error for a transport failure of an upstream call (see the table)."""
    forget_frames(exc)
    timed_out, failed = TRANSPORT_FAILURES[phase]
    if isinstance(exc, TimeoutError):
        return GatewayError(504, f"{where} {timed_out}", code="upstream_timeout")
    refused = _connect_error(exc)
    if refused is not None:
        reason = refused.strerror or type(refused).__name__
        return GatewayError(502, f"{where} is unreachable ({reason})", code="upstream_unreachable")
    return GatewayError(502, f"{where} {failed} ({type(exc).__name__})", code="upstream_error")


def forget_frames(exc: BaseException) -> None:
    """Drop a transport error's traceback once it is turned into the client's error: the
    error is also kept by what failed (an H1Response, a timed-out future) that the
    traceback's frames hold, a reference cycle the GC alone would free
    (docs/architecture.md, "No reference cycles per request")."""
    exc.__traceback__ = None


def _connect_error(exc: BaseException) -> OSError | None:
    """The OS error of a connection that could not be made (h1's Unreachable, aiohttp's
    ClientConnectorError), else None."""
    if isinstance(exc, Unreachable):
        return exc.os_error
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientConnectorError):
        os_error: OSError = exc.os_error
        return os_error
    return None


def pass_on_headers(headers: Mapping[str, str], ctx: RequestContext) -> None:
    for name, value in headers.items():
        lower = name.lower()
        if lower in PASSED_HEADERS or lower.startswith(PASSED_PREFIXES):
            ctx.response_headers[lower] = value


def _aborted() -> GatewayError:
    return GatewayError(
        503, "The request was aborted for a weight update (pause mode 'abort'); resend it",
        code="aborted_for_refit", headers={"retry-after": "1"},
    )  # fmt: skip


@dataclass(slots=True)
class Upstream:
    """How one route reaches its backend (headers, timeouts, its pool); built once."""

    route_name: str
    headers: dict[str, str]
    head: bytes  # the same headers as request lines, for backends/h1.py
    timeouts: Timeouts
    first_byte: float | None
    pool: Pool
    retries: RetryPolicy

    @classmethod
    def for_route(cls, route: RouteConfig) -> Upstream:
        headers = {"content-type": "application/json", "accept": "application/json"}
        headers.update(route.headers)
        key = route.api_key.get_secret_value() if route.api_key else ""
        if key:
            headers["authorization"] = f"Bearer {key}"
        urls = route.base_urls or ([route.base_url] if route.base_url else [])
        return cls(
            route_name=route.name,
            headers=headers,
            head=encode_headers(headers),
            timeouts=route.timeouts,
            first_byte=route.timeouts.first_byte,
            pool=Pool.from_urls(route.name, urls, route, start_hint(route, urls)),
            retries=route.retries,
        )

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        """The same timeouts for aiohttp (https upstreams, engine side calls)."""
        return client_timeout(self.timeouts)

    @property
    def base_url(self) -> str:
        return self.pool.replicas[0].base_url

    def describe(self, replica: Replica | None = None) -> str:
        origin = (replica or self.pool.replicas[0]).origin
        return f"route '{self.route_name}': upstream {origin}"


def start_hint(route: RouteConfig, urls: list[str]) -> str:
    """How to bring up the engine a route points at, for the error a client sees when
    nothing answers there (the one place a new user meets a route with no engine)."""
    from urllib.parse import urlsplit

    model = route.upstream_model or route.name
    if not urls:
        return ""
    parts = urlsplit(urls[0])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    at = f"--host {host} --port {port}"
    commands = {
        "vllm": f"vllm serve {model} {at}",
        "sglang": f"python -m sglang.launch_server --model-path {model} {at}",
        "tgi": f"text-generation-launcher --model-id {model} --hostname {host} --port {port}",
    }
    if route.backend in commands:
        return f"Is the engine running? Start one with: {commands[route.backend]}"
    return "Check the route's base_url and that the server is up."


class UpstreamHTTP:
    """Owns the clients (one set per worker process), the pools and the control plane."""

    def __init__(
        self,
        max_connections: int = 0,
        control: ControlPlane | None = None,
        limits: AnswerLimits | None = None,
    ) -> None:
        self._max_connections = max_connections
        self.limits = limits or DEFAULT_LIMITS
        self._session: aiohttp.ClientSession | None = None
        self.h1 = H1Client(max_connections)
        self._h1_targets: dict[str, Target | None] = {}
        self.control = control or ControlPlane()

    def _h1_target(self, base_url: str) -> Target | None:
        """The parsed URL when backends/h1.py serves this replica (plain http), else None."""
        try:
            return self._h1_targets[base_url]
        except KeyError:
            target = self.h1.target(base_url) if Target.supports(base_url) else None
            self._h1_targets[base_url] = target
            return target

    def upstream_for(self, route: RouteConfig) -> Upstream:
        return Upstream.for_route(route)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            import aiohttp

            # limit=0: no silent cap on concurrent upstream requests (aiohttp's default is 100).
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=75,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        await self.h1.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- one attempt -----------------------------------------------------------------------
    async def _post(
        self, upstream: Upstream, replica: Replica, path: str, body: bytes, ctx: RequestContext
    ) -> UpstreamResponse:
        target = self._h1_target(replica.base_url)
        if target is not None:
            head = upstream.head
            if ctx.request_id:  # checked printable ASCII (gateway/observe.py) or minted
                head += b"x-request-id: " + ctx.request_id.encode() + b"\r\n"
            try:
                return await self.h1.post(target, path, head, body, upstream.timeouts)
            except (TimeoutError, H1Error, OSError) as exc:
                raise transport_error(exc, upstream.describe(replica), "send") from None
        import aiohttp

        headers = upstream.headers
        if ctx.request_id:
            headers = {**headers, "x-request-id": ctx.request_id}
        where = upstream.describe(replica)
        try:
            # no redirects: a POST is not replayed elsewhere (a 3xx is a 502, see _not_2xx)
            send = self.session.post(
                replica.base_url + path, data=body, headers=headers, timeout=upstream.timeout,
                allow_redirects=False,
            )  # fmt: skip
            if upstream.first_byte is None:
                return await send
            async with asyncio.timeout(upstream.first_byte):
                return await send
        except (TimeoutError, aiohttp.ClientError) as exc:  # ServerTimeoutError is a timeout
            raise transport_error(exc, where, "send") from None

    # -- attempts with retries, replica choice and health ------------------------------------
    async def _send(
        self, upstream: Upstream, path: str, body: dict[str, Any], ctx: RequestContext
    ) -> tuple[UpstreamResponse, Replica]:
        """Send to a replica, retrying (with backoff, on another replica when there is one)
        while nothing has reached the client. Returns the response and the replica, whose
        in_flight count the caller must release."""
        pool, policy = upstream.pool, upstream.retries
        raw = orjson.dumps(body)
        tried: set[int] = set()
        attempt = 0
        while True:
            if pool.shared is not None:
                await pool.consult_shared(body, ctx, tried)
            replica = pool.pick(body, ctx, tried)
            replica.in_flight += 1
            replica.served += 1
            ctx.upstream, ctx.upstream_name = replica.origin, replica.name
            try:
                response = await self._abortable_post(upstream, replica, path, raw, ctx)
            except GatewayError as exc:
                replica.in_flight -= 1
                if exc.code == "aborted_for_refit":
                    raise
                pool.record_failure(replica, str(exc.code))
                if attempt >= policy.attempts:
                    raise
                delay = backoff_delay(policy, attempt)
                reason = str(exc.code)
            else:
                status = response.status
                if status < 500:
                    pool.record_success(replica)
                else:
                    pool.record_failure(replica, f"HTTP {status}")
                if status not in policy.on_status or attempt >= policy.attempts:
                    return response, replica
                asked = retry_after_seconds(response.headers)
                if asked is None:
                    delay = backoff_delay(policy, attempt)
                elif asked > policy.max_retry_after_s:
                    return response, replica  # too long to hold the client: pass it on
                else:
                    delay = asked
                response.release()
                replica.in_flight -= 1
                reason = f"HTTP {status}"
            attempt += 1
            ctx.retries += 1
            tried.add(id(replica))
            log.info(
                "route %s: %s from %s; retry %d in %.2fs",
                upstream.route_name, reason, replica.origin, attempt, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)

    async def _abortable_post(
        self, upstream: Upstream, replica: Replica, path: str, raw: bytes, ctx: RequestContext
    ) -> UpstreamResponse:
        task = asyncio.current_task()
        assert task is not None
        try:
            with self.control.abortable(task.cancel):
                return await self._post(upstream, replica, path, raw, ctx)
        except asyncio.CancelledError:
            if self.control.aborting and task.uncancel() == 0:
                raise _aborted() from None
            raise

    # -- the two shapes of answer ------------------------------------------------------------
    async def post_json(
        self, upstream: Upstream, path: str, body: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        """POST a JSON body; return the parsed 2xx answer or raise a normalized GatewayError."""
        await upstream.pool.admit()
        try:
            response, replica = await self._send(upstream, path, body, ctx)
            try:
                raw = await self._read(response, upstream, replica)
            finally:
                replica.in_flight -= 1
        finally:
            upstream.pool.release()
        pass_on_headers(response.headers, ctx)
        if response.status >= 400:
            raise normalize_upstream_error(
                upstream.describe(replica), response.status, raw, response
            )
        if response.status >= 300:
            raise _not_2xx(upstream.describe(replica), response.status)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise GatewayError(
                502, f"{upstream.describe(replica)} answered with invalid JSON ({exc})",
                code="upstream_invalid",
            ) from None  # fmt: skip
        if not isinstance(answer, dict):
            kind = "null" if answer is None else type(answer).__name__
            raise GatewayError(
                502, f"{upstream.describe(replica)} answered a JSON {kind}, not an object",
                code="upstream_invalid",
            )  # fmt: skip
        return answer

    async def _read(
        self, response: UpstreamResponse, upstream: Upstream, replica: Replica
    ) -> bytes:
        task = asyncio.current_task()
        assert task is not None
        limit = self.limits.answer_bytes
        try:
            with self.control.abortable(task.cancel):
                if isinstance(response, H1Response):
                    return await response.read(limit)
                return await _read_aiohttp(response, limit)
        except TooLarge as exc:
            response.close()  # the rest is never read: the connection cannot be reused
            raise GatewayError(
                502, f"{upstream.describe(replica)} answered more than {exc.limit} bytes "
                "(the gateway's limit, server.upstream_max_answer_bytes)",
                code="upstream_too_large",
            ) from None  # fmt: skip
        except asyncio.CancelledError:
            if self.control.aborting and task.uncancel() == 0:
                raise _aborted() from None
            raise
        except client_errors() as exc:  # TimeoutError included: it is an OSError
            raise transport_error(exc, upstream.describe(replica), "read") from None
        finally:
            response.release()

    async def open_stream(
        self,
        upstream: Upstream,
        path: str,
        body: dict[str, Any],
        ctx: RequestContext,
        named_events: bool = False,
    ) -> ChatStream:
        await upstream.pool.admit()
        try:
            response, replica = await self._send(upstream, path, body, ctx)
        except BaseException:
            upstream.pool.release()
            raise
        pass_on_headers(response.headers, ctx)
        if response.status >= 400:
            try:
                raw = await self._read(response, upstream, replica)
            except GatewayError:
                raw = b""
            finally:
                replica.in_flight -= 1
                upstream.pool.release()
            where = upstream.describe(replica)
            raise normalize_upstream_error(where, response.status, raw, response)
        if response.status >= 300:  # a redirect (or a 1xx/2xx oddity) is no stream
            response.close()
            replica.in_flight -= 1
            upstream.pool.release()
            raise _not_2xx(upstream.describe(replica), response.status)
        return UpstreamSSE(
            response, upstream, replica, self.control, named_events, self.limits.event_bytes
        )

    async def get_status(self, url: str, timeout: float = 2.0) -> int | None:
        """GET a URL (health checks); None when unreachable."""
        status, _ = await self._bodyless(b"GET", url, timeout)
        return status

    async def post_status(
        self, url: str, timeout: float = 30.0, json_body: dict[str, Any] | None = None
    ) -> tuple[int | None, str]:
        """POST with no body, or a small JSON one (engine admin endpoints); (status, short
        text)."""
        return await self._bodyless(b"POST", url, timeout, json_body)

    async def _bodyless(
        self, method: bytes, url: str, timeout: float, json_body: dict[str, Any] | None = None
    ) -> tuple[int | None, str]:
        """(status, the first 200 characters of the answer) or (None, why)."""
        data = b"" if json_body is None else orjson.dumps(json_body)
        head = b"" if json_body is None else b"content-type: application/json\r\n"
        if Target.supports(url):
            limits = Timeouts(connect=timeout, total=timeout)
            try:
                response = await self.h1.post(Target(url), "", head, data, limits, method)
                try:
                    text = (await response.read(self.limits.answer_bytes)).decode(
                        "utf-8", "replace"
                    )
                finally:
                    response.release()
                return response.status, text[:200]
            except (H1Error, OSError) as exc:
                return None, type(exc).__name__
        import aiohttp

        try:
            async with self.session.request(
                method.decode(),
                url,
                data=data or None,
                headers={"content-type": "application/json"} if json_body is not None else None,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as r:
                return r.status, (await r.text())[:200]
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, type(exc).__name__


def _not_2xx(where: str, status: int) -> GatewayError:
    return GatewayError(
        502, f"{where} answered HTTP {status}, not a 2xx answer; the gateway follows no "
        "redirects: check the route's base_url", code="upstream_invalid",
    )  # fmt: skip


async def _read_aiohttp(response: Any, limit: int) -> bytes:
    """aiohttp's body, refused past `limit` bytes as backends/h1.py's read(limit) does."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise TooLarge(declared, limit)
    parts: list[bytes] = []
    size = 0
    async for data in response.content.iter_any():
        size += len(data)
        if size > limit:
            raise TooLarge(size, limit)
        parts.append(data)
    return b"".join(parts)


def chunk_problem(payload: bytes) -> str | None:
    """Why a Chat or Completions stream event is not a chunk to relay, or None; checked on
    bytes (the relay never decodes most chunks): a JSON object by its first and last byte,
    valid UTF-8, and a `choices` that is a list."""
    if payload[:1] != b"{" or payload[-1:] != b"}":
        return _json_problem(payload)
    if not payload.isascii():
        try:
            payload.decode()
        except UnicodeDecodeError:
            return "is not valid UTF-8"
    at = payload.find(b'"choices":')
    if (
        at >= 0
        and payload[at + 10 : at + 11] != b"["  # orjson and vLLM write no space
        and payload[at + 10 :].lstrip()[:1] != b"["
    ):
        return "has a 'choices' that is not a list"
    return None


def _json_problem(payload: bytes) -> str | None:
    """The slow check, for events that do not look like a compact JSON object."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return f"is not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return f"is a JSON {'null' if doc is None else type(doc).__name__}, not an object"
    return None


def _event_problem(data: bytes) -> str | None:
    """Native Responses events: JSON objects, checked by their first and last byte."""
    if data[:1] != b"{" or data[-1:] != b"}":
        return _json_problem(data)
    if not data.isascii():
        try:
            data.decode()
        except UnicodeDecodeError:
            return "is not valid UTF-8"
    return None


# Push mode: how long the end of an HTTP body may trail `data: [DONE]` for the connection to
# be kept (engines send the body's last chunk in a write of its own, a moment later).
SETTLE_AFTER_DONE_S = 1.0


class UpstreamSSE(ChatStream):
    """Chat chunks from an upstream SSE answer; closing early drops the upstream connection,
    which makes vLLM and SGLang abort the request and free its slot."""

    def __init__(
        self,
        response: UpstreamResponse,
        upstream: Upstream,
        replica: Replica,
        control: ControlPlane,
        named_events: bool = False,
        max_event_bytes: int = DEFAULT_LIMITS.event_bytes,
    ) -> None:
        self._response = response
        self._upstream = upstream
        self._replica = replica
        self._control = control
        # Responses API streams: yield SSEEvent objects (their `event:` names matter).
        self._named_events = named_events
        self._finished = False
        self._released = False
        self._aborted = False
        self.saw_done = False
        self._parser = SSEParser(max_event_bytes)
        self._parser_used = False  # iterated or pushed: the other way is no longer possible
        self._pushed = False
        # the driver's per-chunk transform, applied here rather than by a TransformedStream
        # around this one: an async-generator layer less on every relayed chunk
        self.transform: Callable[[bytes], bytes] | None = None

    def _abort(self) -> None:
        self._aborted = True
        with contextlib.suppress(Exception):
            self._response.close()

    def _take(self, chunk: bytes) -> tuple[list[Any], StreamBroken | None]:
        """One network read (b"": the end of the body) in: the payloads to relay, and the
        break when the stream broke there. Sets `saw_done` at `[DONE]`."""
        parser = self._parser
        named = self._named_events
        transform = self.transform
        broken: StreamBroken | None = None
        try:
            if chunk:
                batch = parser.feed(chunk)
            else:  # end of the body: a partial event left is passed on too
                tail = parser.close()
                batch = [tail] if tail is not None else []
        except EventTooLarge as exc:  # nothing of that event is relayed
            batch = exc.events
            broken = StreamBroken(
                502, f"{self._describe()} sent an SSE event of more than {exc.limit} bytes "
                "(the gateway's limit, server.upstream_max_event_bytes)",
                code="upstream_too_large",
            )  # fmt: skip
        payloads: list[Any] = []
        for event in batch:
            data = event.data
            if data == DONE:
                self._finished = self.saw_done = True
                break
            # The checks, on bytes: a compact ASCII JSON object whose `choices` is a list
            # passes with two slices and two scans (the usual chunk); anything else takes
            # the full check. An event with no `choices` may be an upstream error quoting a
            # key: it is redacted.
            problem = None
            if data[:1] == b"{" and data[-1:] == b"}" and data.isascii():
                at = data.find(b'"choices":')
                if at < 0 and (not named or b'"error' in data):
                    data = event.data = redact_bytes(data)
                elif data[at + 10 : at + 11] != b"[" and not named:
                    problem = chunk_problem(data)
            else:
                problem = _event_problem(data) if named else chunk_problem(data)
                if problem is None and b'"choices":' not in data:
                    data = event.data = redact_bytes(data)
            if problem is not None and not chunk:  # the partial event at the end
                broken = StreamBroken(
                    502, f"{self._describe()} ended the stream inside an event",
                    code="upstream_truncated",
                )  # fmt: skip
                break
            if problem is not None:
                broken = StreamBroken(
                    502, f"{self._describe()} sent a stream event that {problem}",
                    code="upstream_invalid",
                )  # fmt: skip
                break
            if named:
                payloads.append(event)
            elif transform is None:
                payloads.append(data)
            else:
                payloads.append(transform(data))
        return payloads, broken

    def _describe(self) -> str:
        return self._upstream.describe(self._replica)

    def _transport_broken(self, exc: BaseException) -> StreamBroken:
        forget_frames(exc)
        aborted = self._aborted and not isinstance(exc, TimeoutError)
        error = _aborted() if aborted else transport_error(exc, self._describe(), "stream")
        return StreamBroken(error.status, error.message, code=error.code)

    async def _events(self) -> AsyncIterator[list[Any]]:
        try:
            with self._control.abortable(self._abort):
                # readany() + _take() inline, not iter_sse(content.iter_any()): two
                # async-generator layers less on every chunk of every stream.
                read = self._response.content.readany
                take = self._take
                while True:
                    chunk = await read()
                    payloads, broken = take(chunk)
                    if payloads:
                        yield payloads
                    if broken is not None:
                        try:
                            raise broken
                        finally:  # as in push(): no reference cycle through the traceback
                            del broken
                    if self._finished or not chunk:
                        break
            # EOF without [DONE]: the HTTP body ended cleanly (transformers serve never sends
            # [DONE]); the caller judges from the chunks whether the answer was complete.
            self._finished = True
        except client_errors() as exc:  # TimeoutError included: it is an OSError
            raise self._transport_broken(exc) from None
        finally:
            await self.aclose()

    @property
    def pushable(self) -> bool:
        """push() is possible and worth it: the answer comes through backends/h1.py, not yet
        read, and not already whole (then iterating reads it in one go, with no wake-ups)."""
        response = self._response
        return isinstance(response, H1Response) and not self._parser_used and not response.complete

    async def push(
        self,
        deliver: Callable[[list[Any]], None],
        drain: Callable[[], Awaitable[None]],
        deliver_one: Callable[[bytes], None] | None = None,
    ) -> None:
        """Push mode, instead of iterating: each network read's payloads go to `deliver`
        from the upstream connection's data callback (checked, transformed and limited as
        when iterating; no task wake-up per chunk). When the client is full, the caller
        calls hold(): reading the upstream pauses until `drain()` returns. Returns when the
        upstream ended; raises StreamBroken as iteration does. The caller then aclose()s.

        `deliver_one`, for Chat streams: a read holding exactly one usual chunk (one whole
        `data:` line, a compact ASCII JSON object whose `choices` is a list; nothing
        waiting) goes there as its one payload, with none of the general path's lists and
        event objects: the checks are those of `_take` for such a chunk, in one place."""
        response = self._response
        assert isinstance(response, H1Response)
        self._parser_used = self._pushed = True
        failure: list[BaseException] = []
        take = self._take
        whole = None if self._named_events or deliver_one is None else self._parser.whole
        transform = self.transform

        def sink(chunk: bytes) -> bool:
            try:
                if whole is not None:
                    data = whole(chunk)
                    if (
                        data is not None
                        and data[:1] == b"{"
                        and data[-1:] == b"}"
                        and data.isascii()
                        and (at := data.find(b'"choices":')) >= 0
                        and data[at + 10 : at + 11] == b"["
                    ):
                        deliver_one(data if transform is None else transform(data))  # type: ignore[misc]
                        return False
                payloads, broken = take(chunk)
                if payloads:
                    deliver(payloads)
            except Exception as exc:  # the relay's own failure: raised in the task below
                failure.append(exc)
                return True
            if broken is not None:
                failure.append(broken)
                return True
            return self._finished

        try:
            with self._control.abortable(self._abort):
                await response.push(sink, drain)
        except client_errors() as exc:
            raise self._transport_broken(exc) from None
        if failure:
            error = failure[0]
            failure.clear()
            try:
                raise error
            finally:  # the error's traceback holds this frame: no reference back to it
                del error
        self._finished = True  # [DONE], or EOF without it (the caller judges, as above)

    def hold(self) -> None:
        """Push mode: pause reading the upstream until push()'s drain returns."""
        if isinstance(self._response, H1Response):
            self._response.hold()

    def __aiter__(self) -> AsyncIterator[list[Any]]:
        self._parser_used = True
        return self._events()

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        self._replica.in_flight -= 1
        self._upstream.pool.release()
        if self._finished:
            response = self._response
            if self._parser_used and isinstance(response, H1Response) and self._pushed:
                # [DONE] came, the body's last chunk may still be on its way: waited for
                # (the client has its end frames already), the connection stays reusable
                try:
                    await response.settle(SETTLE_AFTER_DONE_S)
                except BaseException:
                    response.close()
                    raise
            response.release()
        else:
            # Closing the connection is what tells the engine to abort the request.
            with contextlib.suppress(Exception):
                self._response.close()
