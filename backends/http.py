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
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from backends.base import ChatStream
from backends.control import ControlPlane
from backends.h1 import H1Client, H1Error, Target, Unreachable, encode_headers
from backends.pool import Pool, Replica, safe_origin
from backends.retry import backoff_delay, retry_after_seconds
from backends.upstream_errors import normalize_upstream_error
from gateway.config import RouteConfig, Timeouts
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.policies import RetryPolicy
from gateway.sse import DONE, final_event, split_events

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("gateway.upstream")

# Upstream answer headers worth passing on to the client.
PASSED_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry")
PASSED_PREFIXES = ("x-ratelimit-",)
__all__ = ["StreamBroken", "Upstream", "UpstreamHTTP", "safe_origin"]


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
            pool=Pool.from_urls(route.name, urls, route),
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


class UpstreamHTTP:
    """Owns the clients (one set per worker process), the pools and the control plane."""

    def __init__(self, max_connections: int = 0, control: ControlPlane | None = None) -> None:
        self._max_connections = max_connections
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
    ) -> Any:
        target = self._h1_target(replica.base_url)
        if target is not None:
            head = upstream.head
            if ctx.request_id:  # checked printable ASCII (gateway/observe.py) or minted
                head += b"x-request-id: " + ctx.request_id.encode() + b"\r\n"
            try:
                return await self.h1.post(target, path, head, body, upstream.timeouts)
            except TimeoutError:
                where = upstream.describe(replica)
                raise GatewayError(
                    504, f"{where} sent no answer in time", code="upstream_timeout"
                ) from None
            except Unreachable as exc:
                where = upstream.describe(replica)
                reason = exc.os_error.strerror or type(exc.os_error).__name__
                raise GatewayError(
                    502, f"{where} is unreachable ({reason})", code="upstream_unreachable"
                ) from None
            except (H1Error, OSError) as exc:
                where = upstream.describe(replica)
                raise GatewayError(
                    502, f"{where} failed before answering ({type(exc).__name__})",
                    code="upstream_error",
                ) from None  # fmt: skip
        import aiohttp

        headers = upstream.headers
        if ctx.request_id:
            headers = {**headers, "x-request-id": ctx.request_id}
        where = upstream.describe(replica)
        try:
            send = self.session.post(
                replica.base_url + path, data=body, headers=headers, timeout=upstream.timeout
            )
            if upstream.first_byte is None:
                return await send
            async with asyncio.timeout(upstream.first_byte):
                return await send
        except TimeoutError:  # aiohttp's ServerTimeoutError is one too
            raise GatewayError(
                504, f"{where} sent no answer in time", code="upstream_timeout"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            raise GatewayError(
                502, f"{where} is unreachable ({reason})", code="upstream_unreachable"
            ) from None
        except aiohttp.ClientError as exc:
            raise GatewayError(
                502, f"{where} failed before answering ({type(exc).__name__})",
                code="upstream_error",
            ) from None  # fmt: skip

    # -- attempts with retries, replica choice and health ------------------------------------
    async def _send(
        self, upstream: Upstream, path: str, body: dict[str, Any], ctx: RequestContext
    ) -> tuple[Any, Replica]:
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
            ctx.upstream = replica.origin
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
                delay = retry_after_seconds(response.headers)
                if delay is None:
                    delay = backoff_delay(policy, attempt)
                elif delay > policy.max_retry_after_s:
                    return response, replica  # too long to hold the client: pass it on
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
    ) -> Any:
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
        where = upstream.describe(replica)
        if response.status >= 400:
            raise normalize_upstream_error(where, response.status, raw, response)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise GatewayError(502, f"{where} answered with invalid JSON", code="upstream_invalid")
        return answer

    async def _read(self, response: Any, upstream: Upstream, replica: Replica) -> bytes:
        task = asyncio.current_task()
        assert task is not None
        where = upstream.describe(replica)
        try:
            with self.control.abortable(task.cancel):
                return await response.read()
        except asyncio.CancelledError:
            if self.control.aborting and task.uncancel() == 0:
                raise _aborted() from None
            raise
        except TimeoutError:
            raise GatewayError(504, f"{where} stopped answering", code="upstream_timeout") from None
        except client_errors() as exc:
            raise GatewayError(
                502, f"{where} broke off its answer ({type(exc).__name__})", code="upstream_error"
            ) from None
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
        return UpstreamSSE(response, upstream, replica, self.control, named_events)

    async def get_status(self, url: str, timeout: float = 2.0) -> int | None:
        """GET a URL (health checks); None when unreachable."""
        status, _ = await self._bodyless(b"GET", url, timeout)
        return status

    async def post_status(self, url: str, timeout: float = 30.0) -> tuple[int | None, str]:
        """POST with no body (engine admin endpoints); (status, short text)."""
        return await self._bodyless(b"POST", url, timeout)

    async def _bodyless(self, method: bytes, url: str, timeout: float) -> tuple[int | None, str]:
        """(status, the first 200 characters of the answer) or (None, why)."""
        if Target.supports(url):
            limits = Timeouts(connect=timeout, total=timeout)
            try:
                response = await self.h1.post(Target(url), "", b"", b"", limits, method)
                try:
                    text = (await response.read()).decode("utf-8", "replace")
                finally:
                    response.release()
                return response.status, text[:200]
            except (H1Error, OSError) as exc:
                return None, type(exc).__name__
        import aiohttp

        try:
            async with self.session.request(
                method.decode(), url, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as r:
                return r.status, (await r.text())[:200]
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, type(exc).__name__


class UpstreamSSE(ChatStream):
    """Chat chunks from an upstream SSE answer; closing early drops the upstream connection,
    which makes vLLM and SGLang abort the request and free its slot."""

    def __init__(
        self,
        response: Any,  # aiohttp.ClientResponse or backends.h1.H1Response
        upstream: Upstream,
        replica: Replica,
        control: ControlPlane,
        named_events: bool = False,
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
        # the driver's per-chunk transform, applied here rather than by a TransformedStream
        # around this one: an async-generator layer less on every relayed chunk
        self.transform: Callable[[bytes], bytes] | None = None

    def _abort(self) -> None:
        self._aborted = True
        with contextlib.suppress(Exception):
            self._response.close()

    async def _events(self) -> AsyncIterator[list[Any]]:
        describe = self._upstream.describe(self._replica)
        named = self._named_events
        transform = self.transform
        try:
            with self._control.abortable(self._abort):
                # readany() + split_events() inline, not iter_sse(content.iter_any()): two
                # async-generator layers less on every chunk of every stream.
                read = self._response.content.readany
                buffer = b""
                while True:
                    chunk = await read()
                    if chunk:
                        batch, buffer = split_events(buffer, chunk)
                    else:  # end of the body: a partial event left is passed on too
                        tail = final_event(buffer)
                        batch = [tail] if tail is not None else []
                    payloads: list[Any] = []
                    for event in batch:
                        if event.data == DONE:
                            self._finished = True
                            break
                        if named:
                            payloads.append(event)
                        elif transform is None:
                            payloads.append(event.data)
                        else:
                            payloads.append(transform(event.data))
                    if payloads:
                        yield payloads
                    if self._finished:
                        self.saw_done = True
                        return
                    if not chunk:
                        break
            # EOF without [DONE]: the HTTP body ended cleanly (transformers serve never sends
            # [DONE]); the caller judges from the chunks whether the answer was complete.
            self._finished = True
        except TimeoutError:
            raise StreamBroken(
                504, f"{describe} stalled mid-stream (idle timeout)", code="upstream_timeout"
            ) from None
        except client_errors() as exc:
            if self._aborted:
                error = _aborted()
                raise StreamBroken(error.status, error.message, code=error.code) from None
            raise StreamBroken(
                502, f"{describe} broke off the stream ({type(exc).__name__})",
                code="upstream_error",
            ) from None  # fmt: skip
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncIterator[list[Any]]:
        return self._events()

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        self._replica.in_flight -= 1
        self._upstream.pool.release()
        if self._finished:
            self._response.release()
        else:
            # Closing the connection is what tells the engine to abort the request.
            with contextlib.suppress(Exception):
                self._response.close()
