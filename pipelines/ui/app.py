"""Routes for `/ui`: the page, its two assets, and what the page needs to know of this deployment.

The page calls only the public routes, the way any client would, so it is also a living example
of the API. It is served without a token: it holds no data, and a browser cannot send a bearer
header when it navigates; every call the page makes carries the token the user typed. Its
Content-Security-Policy lets it load and call nothing but this origin, so it works offline and
inside a customer's network, and an injected script could not send anything elsewhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pipelines.errors import NotFound

PATH = "/ui"
STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files that change with each release: revalidated, never stale after an upgrade.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class PageConfig:
    """What the page shows before its first call: whether to ask for a token, and the limits."""

    auth: bool
    max_body_bytes: int
    jobs_max_upload_bytes: int
    api_reference: str = "/"
    openapi: str = "/docs.json"


def routes(config: PageConfig) -> list[Route]:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "config.json":
            return JSONResponse(asdict(config), headers=HEADERS)
        if name not in ASSETS:  # a fixed list: no path from the URL ever reaches the file system
            return JSONResponse(NotFound(f"no file {name[:80]!r} under {PATH}").to_payload(), status_code=404)
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)

    return [Route(PATH, page, methods=["GET", "HEAD"]), Route(PATH + "/{name}", asset, methods=["GET", "HEAD"])]
