"""`/docs` (Swagger UI) and `/redoc` with their assets served by the gateway itself.

FastAPI's defaults load the JavaScript and CSS from a CDN, so the pages are blank on the
clusters with no internet where this gateway often runs. The assets come from the installed
`fastapi-offline` package (Swagger UI 5, which renders the OpenAPI 3.1 document FastAPI
emits); only its files are used, not its app class.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

ASSETS = files("fastapi_offline") / "static"
ASSET_PREFIX = "/docs/assets/"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
SERVED = {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}


async def swagger_page(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="gym-gateway - Swagger UI",
        swagger_js_url=ASSET_PREFIX + "swagger-ui-bundle.js",
        swagger_css_url=ASSET_PREFIX + "swagger-ui.css",
        swagger_favicon_url=ASSET_PREFIX + "favicon.png",
    )


async def redoc_page(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="gym-gateway - ReDoc",
        redoc_js_url=ASSET_PREFIX + "redoc.standalone.js",
        redoc_favicon_url=ASSET_PREFIX + "favicon.png",
        with_google_fonts=False,
    )


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in SERVED:  # a fixed list: no path from the client reaches the filesystem
        return Response(status_code=404)
    path = ASSETS / name
    media_type = MEDIA_TYPES[name[name.rindex(".") :]]
    cache = {"cache-control": "max-age=86400"}
    return FileResponse(str(path), media_type=media_type, headers=cache)


ROUTES = [
    Route("/docs", swagger_page, methods=["GET"], include_in_schema=False),
    Route("/redoc", redoc_page, methods=["GET"], include_in_schema=False),
    Route(ASSET_PREFIX + "{name}", asset, methods=["GET"], include_in_schema=False),
]
