"""The one table that turns a transport failure into the client's error (backends/http.py):
the same status, code and message for the h1 client and aiohttp, by when it failed."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from backends.h1 import H1Error, Unreachable
from backends.http import transport_error

WHERE = "route 'm' (upstream replica-0)"


def _connector_error() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("exc", "phase", "status", "code", "message"),
    [
        (TimeoutError(), "send", 504, "upstream_timeout", f"{WHERE} sent no answer in time"),
        (aiohttp.ServerTimeoutError(), "send", 504, "upstream_timeout", f"{WHERE} sent no answer in time"),
        (
            Unreachable(ConnectionRefusedError(111, "Connection refused")), "send", 502,
            "upstream_unreachable", f"{WHERE} is unreachable (Connection refused)",
        ),
        (_connector_error(), "send", 502, "upstream_unreachable", f"{WHERE} is unreachable (Connection refused)"),
        (H1Error("bad status line"), "send", 502, "upstream_error", f"{WHERE} failed before answering (H1Error)"),
        (aiohttp.ServerDisconnectedError(), "send", 502, "upstream_error", f"{WHERE} failed before answering (ServerDisconnectedError)"),
        (TimeoutError(), "read", 504, "upstream_timeout", f"{WHERE} stopped answering"),
        (ConnectionResetError(), "read", 502, "upstream_error", f"{WHERE} broke off its answer (ConnectionResetError)"),
        (TimeoutError(), "stream", 504, "upstream_timeout", f"{WHERE} stalled mid-stream (idle timeout)"),
        (aiohttp.ClientPayloadError(), "stream", 502, "upstream_error", f"{WHERE} broke off the stream (ClientPayloadError)"),
    ],
)  # fmt: skip
def test_transport_failures_map_from_one_table(
    exc: BaseException, phase: str, status: int, code: str, message: str
) -> None:
    error = transport_error(exc, WHERE, phase)
    assert (error.status, error.code, error.message) == (status, code, message)
