"""`/docs` and `/redoc` work with no internet: every asset comes from the gateway itself."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.browser import CHROMIUM, chromium
from tests.gateway_process import GatewayProcess


def test_docs_pages_load_only_local_assets(gateway: GatewayProcess) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(gateway.url + page).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, html
        for source in sources:
            assert source.startswith("/"), f"{page} loads {source} from elsewhere"
            asset = httpx.get(gateway.url + source)
            assert asset.status_code == 200 and len(asset.content) > 1000, source
    assert httpx.get(gateway.url + "/docs/assets/../../etc/passwd").status_code == 404
    assert httpx.get(gateway.url + "/docs/assets/nope.js").status_code == 404


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_swagger_ui_renders_the_api_in_a_browser(gateway: GatewayProcess) -> None:
    """The machine has no internet: a CDN asset would leave the page blank."""
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", gateway.url + "/docs")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "/v1/chat/completions" in dom.stdout and "opblock" in dom.stdout, dom.stdout[-2000:]
