"""The console as a Starlette app: three pages (models, a model, a version), the reports served from S3, a stylesheet.

Read-only by construction: only GET and HEAD reach a route (anything else is 405 with an ``Allow`` header), and no
page has a form or a script. Every value is escaped (Jinja2 autoescape; the charts escape their own text). Pages carry a
Content-Security-Policy that allows only this server's stylesheet and inline SVG; reports, which are self-contained
HTML with inline CSS, are served sandboxed: no script, no network, no form, no frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.ui import charts
from serverless_mlops.ui.data import ConsoleData

HERE = Path(__file__).parent
PAGE_POLICY = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# reports are self-contained pages with inline CSS and SVG and no script: nothing else may load or run
REPORT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox"
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
READ_METHODS = ("GET", "HEAD")


class ReadOnly:
    """405 for every method but GET and HEAD, before any route runs; the security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in READ_METHODS:
            response = PlainTextResponse("the console is read-only: GET only", status_code=405, headers={"allow": "GET, HEAD"})
            await self._with_headers(response, scope, receive, send)
            return
        await self._with_headers(self.app, scope, receive, send)

    @staticmethod
    async def _with_headers(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", PAGE_POLICY.encode()))
                message["headers"] = headers
            await send(message)

        await app(scope, receive, send_with_headers)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(bars=charts.bars, histogram=charts.histogram, quote=lambda s: quote(str(s), safe=""))
    env.filters["num"] = lambda v: "—" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
    env.filters["pct"] = lambda v: "—" if v is None else f"{float(v):.0%}"
    env.filters["when"] = lambda v: (v or "")[:19].replace("T", " ")
    return env


def create_app(data: ConsoleData, *, title: str = "serverless-mlops") -> Starlette:
    templates = environment()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = templates.get_template(name).render(title=title, bucket=data.bucket, **context)
        return HTMLResponse(body, status_code=status)

    def models(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        return page("models.html", overview=data.overview(request.query_params.get("next")))

    def model(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        detail = data.model(request.path_params["name"], request.query_params.get("next"))
        return page("model.html", m=detail)

    def version(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        detail = data.version(request.path_params["name"], request.path_params["version"])
        return page("version.html", v=detail, e=detail.entry)

    def report(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        body, content_type = data.report_body(request.path_params["key"])
        return Response(body, media_type=content_type, headers={"content-security-policy": REPORT_POLICY})

    def stylesheet(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        return Response((HERE / "static" / "console.css").read_bytes(), media_type="text/css")

    async def not_found(request: Request, exc: Exception) -> Response:
        return page("error.html", 404, heading="not found", message=str(exc))

    async def refused(request: Request, exc: Exception) -> Response:
        return page("error.html", 400, heading="cannot show this", message=str(exc))

    async def unreachable(request: Request, exc: Exception) -> Response:
        return page("error.html", 502, heading="AWS did not answer", message=f"{type(exc).__name__}: {exc}")

    async def missing(request: Request, exc: Exception) -> Response:
        return page("error.html", getattr(exc, "status_code", 404), heading="not found", message=f"no page at {request.url.path}")

    routes = [
        Route("/", models, methods=["GET"]),
        Route("/models/{name}", model, methods=["GET"]),
        Route("/models/{name}/versions/{version:int}", version, methods=["GET"]),
        Route("/reports/{key:path}", report, methods=["GET"]),
        Route("/console.css", stylesheet, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            NotFoundError: not_found,
            MlopsError: refused,
            BotoCoreError: unreachable,
            ClientError: unreachable,
            404: missing,
        },
    )
    app.add_middleware(ReadOnly)
    return app
