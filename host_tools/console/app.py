"""The console's Starlette application: pages, the event stream and the workflow's POSTs.

Every route but ``/login`` and ``/static`` needs a session: a page without one redirects to
``/login`` (303), an API or the event stream answers 401. Every POST needs the session's
CSRF token (403 without it). Only a supervisor may move a hit on (403 for a viewer). Each
login, failed login, logout and hit step goes into the operator audit log. Templates are
Jinja2 with autoescaping on, so a terminal id, site, reference or note with markup renders
as text; the Content-Security-Policy allows only this origin's own script and style.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from host_tools.console import i18n
from host_tools.console.auth import LOGIN_COOKIE, SESSION_COOKIE, Session, Sessions, Throttle
from host_tools.console.fleet import Fleet
from host_tools.console.hits import CLOSED, NEXT, Hit, HitStore, WorkflowError
from host_tools.console.oplog import OperatorLog
from host_tools.console.region import RegionHealth
from host_tools.provision.operators import Operators

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000",
}
STREAM_TICK_S = 2.0  # the stream re-renders this often anyway (escalations, stale kiosks)


class Broadcaster:
    """Wakes every open event stream; ``notify`` is safe from any thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue[str]] = set()

    def notify(self, what: str) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        for q in list(self._queues):
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(q.put_nowait, what)

    @contextlib.contextmanager
    def listen(self) -> Any:
        q: asyncio.Queue[str] = asyncio.Queue()
        self._queues.add(q)
        try:
            yield q
        finally:
            self._queues.discard(q)


@dataclass
class ConsoleState:
    hits: HitStore
    fleet: Fleet
    region: RegionHealth
    operators: Operators
    oplog: OperatorLog
    region_name: str
    escalate_after: float = 300.0
    sessions: Sessions = field(default_factory=Sessions)
    throttle: Throttle = field(default_factory=Throttle)
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    clock: Callable[[], float] = time.time
    feed_status: Callable[[], bool] = lambda: True


def _localtime(t: float | None) -> str:
    if t is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t))


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template: hostile ids, sites, references, notes are text
        undefined=jinja2.StrictUndefined,
    )
    env.filters["localtime"] = _localtime
    return env


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def build(state: ConsoleState) -> Starlette:
    env = _env()

    def render(name: str, session: Session | None, status: int = 200, **ctx: Any) -> Response:
        lang = session.lang if session else i18n.pick(ctx.pop("lang", None))
        html = env.get_template(name).render(
            s=i18n.strings(lang), lang=lang, languages=i18n.NAMES, session=session,
            region=state.region_name, **ctx,
        )  # fmt: skip
        return HTMLResponse(html, status, headers=SECURITY_HEADERS)

    def session_of(request: Request) -> Session | None:
        s = state.sessions.get(request.cookies.get(SESSION_COOKIE))
        if s is None:
            return None
        op = state.operators.load().get(s.name)
        if op is None or op.role != s.role:  # removed, or role changed: log in again
            state.sessions.end(s.token)
            return None
        return s

    def refuse(request: Request, api: bool) -> Response:
        if api:
            return JSONResponse({"error": "no session: log in"}, 401, headers=SECURITY_HEADERS)
        return RedirectResponse("/login", 303, headers=SECURITY_HEADERS)

    # -- fragments (also what the event stream sends) ---------------------------------
    def hits_ctx(session: Session) -> dict[str, Any]:
        now = state.clock()
        return {
            "hits": state.hits.all(),
            "now": now,
            "escalate_after": state.escalate_after,
            "next_steps": NEXT,
            "closed": CLOSED,
            "csrf": session.csrf,
        }

    def fleet_ctx(params: dict[str, str]) -> dict[str, Any]:
        rows = state.fleet.rows()
        sites = sorted({r["site"] for r in rows if r["site"]})
        site = params.get("site") or ""
        if site:
            rows = [r for r in rows if r["site"] == site]
        key = params.get("sort") or "id"
        if key not in ("id", "site", "online", "last_seen", "problems"):
            key = "id"

        def sort_key(r: dict[str, Any]) -> Any:
            v = r[key]
            if key == "problems":
                return (-len(v), r["id"])
            if key == "online":
                return (v, r["id"])
            return (v is None, v if v is not None else "", r["id"])

        rows.sort(key=sort_key)
        return {"rows": rows, "sites": sites, "site": site, "sort": key, "now": state.clock()}

    def fragment(page: str, session: Session, params: dict[str, str]) -> str:
        s = i18n.strings(session.lang)
        base = {"s": s, "lang": session.lang, "session": session}
        if page == "hits":
            return env.get_template("_hits.html").render(**base, **hits_ctx(session))
        if page == "fleet":
            return env.get_template("_fleet.html").render(**base, **fleet_ctx(params))
        return env.get_template("_region.html").render(
            **base, health=state.region.summary(), now=state.clock()
        )

    # -- routes ----------------------------------------------------------------------------
    async def login_page(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        lang = i18n.pick(request.query_params.get("lang"))
        r = render("login.html", None, login_token=token, error=None, lang=lang)
        r.set_cookie(LOGIN_COOKIE, token, httponly=True, secure=True, samesite="strict", path="/")
        return r

    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        lang = i18n.pick(str(form.get("lang", "en")))
        cookie = request.cookies.get(LOGIN_COOKIE) or ""
        if not cookie or not secrets.compare_digest(cookie, str(form.get("login_token", ""))):
            return PlainTextResponse("login form token missing or wrong: reload the page", 403)
        addr = _address(request)
        wait = state.throttle.locked(name, addr)
        token = secrets.token_urlsafe(24)

        def again(error: str, status: int) -> Response:
            r = render("login.html", None, status, login_token=token, error=error, lang=lang)
            r.set_cookie(LOGIN_COOKIE, token, httponly=True, secure=True, samesite="strict")
            return r

        if wait > 0:
            state.oplog.append(name, "login_throttled", addr, retry_after_s=round(wait))
            r = again("login_throttled", 429)
            r.headers["Retry-After"] = str(int(wait) + 1)
            return r
        op = await asyncio.to_thread(state.operators.verify, name, password)
        if op is None:
            state.throttle.failed(name, addr)
            state.oplog.append(name, "login_failed", addr)
            return again("login_failed", 401)
        state.throttle.succeeded(name, addr)
        session = state.sessions.new(op.name, op.role, lang)
        state.oplog.append(op.name, "login", addr, role=op.role)
        r = RedirectResponse("/hits", 303, headers=SECURITY_HEADERS)
        r.set_cookie(
            SESSION_COOKIE, session.token, httponly=True, secure=True, samesite="strict", path="/"
        )
        r.delete_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return r

    async def csrf_checked(request: Request) -> tuple[Session | None, Any, Response | None]:
        session = session_of(request)
        if session is None:
            return None, None, refuse(request, api=True)
        form = await request.form()
        given = form.get("csrf") or request.headers.get("x-csrf-token")
        if not session.csrf_ok(str(given) if given else None):
            state.oplog.append(session.name, "csrf_refused", request.url.path)
            return (
                None,
                None,
                JSONResponse(
                    {"error": "missing or wrong CSRF token"}, 403, headers=SECURITY_HEADERS
                ),
            )
        return session, form, None

    async def logout(request: Request) -> Response:
        session, _form, bad = await csrf_checked(request)
        if bad is not None or session is None:
            return bad or refuse(request, True)
        state.sessions.end(session.token)
        state.oplog.append(session.name, "logout")
        r = RedirectResponse("/login", 303, headers=SECURITY_HEADERS)
        r.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return r

    async def root(request: Request) -> Response:
        return RedirectResponse("/hits" if session_of(request) else "/login", 303)

    def page(name: str) -> Callable[[Request], Any]:
        async def view(request: Request) -> Response:
            session = session_of(request)
            if session is None:
                return refuse(request, api=False)
            params = dict(request.query_params)
            return render(
                "page.html", session, page=name, live=fragment(name, session, params),
                query=request.url.query,
            )  # fmt: skip

        return view

    async def step(request: Request) -> Response:
        session, form, bad = await csrf_checked(request)
        if bad is not None or session is None:
            return bad or refuse(request, True)
        hit_id = int(request.path_params["hit_id"])
        target = str(form.get("state", ""))
        if not session.supervisor:
            state.oplog.append(session.name, "step_refused", f"hit:{hit_id}", state=target)
            return JSONResponse(
                {"error": "only a supervisor may change a hit"}, 403, headers=SECURITY_HEADERS
            )
        note = str(form.get("note", "")).strip()
        try:
            hit = state.hits.step(hit_id, target, note, session.name)
        except WorkflowError as exc:
            return JSONResponse({"error": str(exc)}, 409, headers=SECURITY_HEADERS)
        state.oplog.append(session.name, "hit_" + target, f"hit:{hit_id}", note=note,
                           query_id=hit.query_id, terminal=hit.terminal)  # fmt: skip
        state.broadcaster.notify("hits")
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"id": hit.id, "state": hit.state}, headers=SECURITY_HEADERS)
        return RedirectResponse("/hits", 303, headers=SECURITY_HEADERS)

    async def api_hits(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return refuse(request, api=True)
        return JSONResponse(
            [_hit_json(h, state) for h in state.hits.all()], headers=SECURITY_HEADERS
        )

    async def api_fleet(request: Request) -> Response:
        if session_of(request) is None:
            return refuse(request, api=True)
        return JSONResponse(state.fleet.rows(), headers=SECURITY_HEADERS)

    async def api_region(request: Request) -> Response:
        if session_of(request) is None:
            return refuse(request, api=True)
        return JSONResponse(state.region.summary(), headers=SECURITY_HEADERS)

    async def events(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return refuse(request, api=True)
        params = dict(request.query_params)
        name = params.get("page", "hits")
        if name not in ("hits", "fleet", "region"):
            name = "hits"

        async def stream() -> AsyncIterator[str]:
            with state.broadcaster.listen() as q:
                last = None
                while True:
                    if state.sessions.get(session.token) is None:
                        yield "event: logout\ndata: {}\n\n"
                        return
                    html = fragment(name, session, params)
                    if html != last:
                        last = html
                        yield f"event: update\ndata: {json.dumps({'html': html})}\n\n"
                    else:
                        yield ": tick\n\n"
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(q.get(), STREAM_TICK_S)

        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        state.broadcaster.loop = asyncio.get_running_loop()
        yield

    return Starlette(
        routes=[
            Route("/", root),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/hits", page("hits")),
            Route("/fleet", page("fleet")),
            Route("/region", page("region")),
            Route("/hits/{hit_id:int}/step", step, methods=["POST"]),
            Route("/api/hits", api_hits),
            Route("/api/fleet", api_fleet),
            Route("/api/region", api_region),
            Route("/events", events),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        lifespan=lifespan,
    )


def _hit_json(h: Hit, state: ConsoleState) -> dict[str, Any]:
    return {
        "id": h.id, "query_id": h.query_id, "terminal": h.terminal, "site": h.site, "t": h.t,
        "status": h.status, "reporting_country": h.reporting_country, "reference": h.reference,
        "list_version": h.list_version, "late": h.late, "state": h.state,
        "escalated": h.escalated(state.clock(), state.escalate_after),
        "steps": [{"state": s.state, "note": s.note, "who": s.who, "t": s.t} for s in h.steps],
    }  # fmt: skip
