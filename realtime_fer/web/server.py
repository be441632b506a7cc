"""The aiohttp application of ``realtime-fer serve``: the page, its static files and a WebSocket.

Why aiohttp: one package gives the HTTP server, the WebSocket server and an asyncio client (used
by the tests), with no ASGI server to pick and configure beside it; it has wheels for every
platform the recognizer runs on and no dependency on a CDN or a build step. The page is three
static files in the package (``static/``), served as they are.

Routes:

* ``GET /`` -- the page; ``GET /static/<file>`` -- its script and style (public: they are the
  package's own files).
* ``GET /ws`` -- a WebSocket: the server sends binary views (:mod:`realtime_fer.web.views`),
  newest first and never queued; the page may send ``{"stream": "<id>"}`` to switch streams.
* ``GET /api/streams`` -- ``{"streams": [...], "viewers": n}`` as JSON.

With an access token (``--token``), ``/``, ``/ws`` and ``/api/*`` need ``?token=<token>``; a
wrong or missing one gets HTTP 403. Without one, serving on a non-loopback address logs a
warning that names the risk.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import json
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from realtime_fer.web.views import ViewBoard

log = logging.getLogger(__name__)

#: Files the page is made of (package data, ``realtime_fer/web/static``).
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}


@dataclass
class ServeOptions:
    """Where and how the page is served."""

    host: str = "127.0.0.1"
    """Address to listen on; loopback by default (``0.0.0.0`` for every interface)."""
    port: int = 8080
    """TCP port; 0 lets the OS choose (see :attr:`PageServer.url`)."""
    token: str | None = None
    """Access token required on the page URL and the WebSocket (``?token=...``); ``None``: none."""
    send_timeout_s: float = 5.0
    """A viewer whose socket takes longer than this to accept one view is disconnected."""
    idle_view_s: float = 1.0
    """How often a viewer's loop wakes when no view comes (to notice a closed page)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port}")
        if self.token is not None and not self.token:
            raise ValueError("an empty token would match nothing useful; omit --token or give one")
        if self.send_timeout_s <= 0:
            raise ValueError("send_timeout_s must be > 0")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: may resolve to anything


def warn_if_open(options: ServeOptions, logger: logging.Logger | None = None) -> bool:
    """Log one WARNING when the page is served beyond this machine without a token."""
    if options.token is not None or is_loopback_host(options.host):
        return False
    (logger or log).warning(
        "serving the live page on %s without --token: anyone who can reach this address can watch the camera "
        "and every face's emotions; give --token SECRET (and open the page as /?token=SECRET) or serve on 127.0.0.1",
        options.host,
    )
    return True


class PageServer:
    """The page, its files and the viewers' WebSockets, fed by a :class:`ViewBoard`.

    Args:
        board: the streams' latest views.
        options: address, port, token.
    """

    def __init__(self, board: ViewBoard, options: ServeOptions) -> None:
        self.board = board
        self.options = options
        self.viewers = 0
        """Open WebSockets now."""
        self.views_sent = 0
        self.viewers_dropped = 0
        """Viewers disconnected because their socket could not keep up (``send_timeout_s``)."""
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        """``http://host:port/`` once started (the OS-chosen port filled in)."""
        self.app = self._make_app()

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self._socket)
        app.router.add_get("/api/streams", self._streams)
        return app

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> str:
        """Listen; returns the page URL. Raises OSError when the port is taken."""
        self.board.bind(asyncio.get_running_loop())
        warn_if_open(self.options)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - aiohttp exposes no public accessor
        port = sockets[0].getsockname()[1] if sockets else self.options.port
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        self.url = f"http://{host}:{port}/"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers -------------------------------------------------------------------------------
    def _allowed(self, request: web.Request) -> bool:
        token = self.options.token
        if token is None:
            return True
        given = request.query.get("token", "")
        return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))

    def _forbidden(self) -> web.Response:
        return web.Response(status=403, text="403: this page needs its access token (?token=...)\n")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return self._forbidden()
        return web.Response(body=_static_bytes("index.html"), content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=_static_bytes(name), content_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})

    async def _streams(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return self._forbidden()
        return web.json_response({"streams": self.board.streams(), "viewers": self.viewers, "views_sent": self.views_sent})

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return self._forbidden()
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        want: dict[str, Any] = {"stream": request.query.get("stream") or None, "switched": False}
        reader = asyncio.create_task(self._read(ws, want))
        self.viewers += 1
        log.info("viewer connected (%d open)", self.viewers)
        seq = 0
        try:
            while not ws.closed and not reader.done():
                if want["switched"]:
                    want["switched"] = False
                    seq = 0
                view = await self.board.next_view(want["stream"], seq, self.options.idle_view_s)
                if view is None or ws.closed:
                    continue
                # the newest view only: while this send waits on a slow socket, newer views
                # replace each other on the board and the skipped ones are never sent
                await asyncio.wait_for(ws.send_bytes(view.packet), self.options.send_timeout_s)
                self.views_sent += 1
                seq = view.seq
        except asyncio.TimeoutError:
            self.viewers_dropped += 1
            log.warning("a viewer could not take a view within %.1f s: disconnected", self.options.send_timeout_s)
        except (ConnectionResetError, ConnectionError, RuntimeError) as exc:  # closed tab, reset socket
            log.info("viewer gone: %s", exc)
        finally:
            self.viewers -= 1
            reader.cancel()
            if not ws.closed:
                await ws.close()
            log.info("viewer disconnected (%d open)", self.viewers)
        return ws

    async def _read(self, ws: web.WebSocketResponse, want: dict[str, Any]) -> None:
        """The page's requests (``{"stream": id}``); returns when the socket closes."""
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                continue
            stream = data.get("stream") if isinstance(data, dict) else None
            if isinstance(stream, str) and len(stream) <= 64:
                want["stream"] = stream
                want["switched"] = True


@functools.lru_cache(maxsize=len(STATIC_FILES))
def _static_bytes(name: str) -> bytes:
    """A file of the page, read from the package once."""
    return resources.files("realtime_fer.web").joinpath("static", name).read_bytes()
