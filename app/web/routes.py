"""The dashboard's page, its assets and the model card (open: the page holds no data).

Everything the page shows comes from the public REST API, called by the browser with
the user's key; these routes only serve files, so they need no key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt

from app.api.problems import problem_response
from app.web.assets import Asset

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# The page runs only its own scripts and talks only to this origin. Plotly.js sets
# inline styles on the SVG it draws, hence 'unsafe-inline' for styles (never scripts).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MODEL_CARD_IMAGES = {".png": "image/png", ".svg": "image/svg+xml"}


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> HTMLResponse:
    """The analyst dashboard."""
    settings = request.app.state.settings
    assets: dict[str, Asset] = request.app.state.web_assets
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "asset_urls": {name: asset.url for name, asset in assets.items()},
            "keys_required": bool(settings.api_keys),
            "model_name": settings.model_name,
        },
        headers=PAGE_HEADERS,
    )


@router.api_route("/assets/{name}", methods=["GET", "HEAD"])
async def asset(
    request: Request,
    name: str,
    accept_encoding: Annotated[str, Header()] = "",
    if_none_match: Annotated[str, Header()] = "",
) -> Response:
    """A script or style sheet of the page, gzipped when the browser accepts it."""
    assets: dict[str, Asset] = request.app.state.web_assets
    found = assets.get(name)
    if found is None:
        return problem_response(
            request,
            404,
            "not-found",
            f"No dashboard asset named {name!r}; the page at / links the ones that exist.",
        )
    etag = f'"{found.digest}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=31536000, immutable",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in accept_encoding.lower():
        body = found.gzipped()
        headers["Content-Encoding"] = "gzip"
    else:
        body = found.body
    return Response(body, media_type=found.media_type, headers=headers)


@router.get("/model-card", response_class=HTMLResponse)
async def model_card(request: Request) -> Response:
    """The model card (docs/model_card.md) as a page."""
    path = request.app.state.settings.docs_dir / "model_card.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return problem_response(
            request,
            404,
            "not-found",
            "The model card is not on this server: set docs_dir (QUANTSERVE_DOCS_DIR) to the "
            "folder holding model_card.md.",
        )
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    assets: dict[str, Asset] = request.app.state.web_assets
    return templates.TemplateResponse(
        request,
        "model_card.html",
        {"body": body, "css_url": assets["dashboard.css"].url},
        headers=PAGE_HEADERS,
    )


@router.get("/model_card/{image}")
async def model_card_image(request: Request, image: str) -> Response:
    """A figure of the model card (its Markdown links them as model_card/<file>)."""
    folder: Path = request.app.state.settings.docs_dir / "model_card"
    media_type = MODEL_CARD_IMAGES.get(Path(image).suffix)
    candidates = {p.name: p for p in folder.glob("*")} if folder.is_dir() else {}
    if media_type is None or image not in candidates:
        return problem_response(
            request, 404, "not-found", f"The model card has no figure named {image!r}."
        )
    return Response(candidates[image].read_bytes(), media_type=media_type)
