"""A codec server: lets the Temporal Web UI (or ``temporal`` CLI) show durabot's encoded payloads.

    python -m workers.codec_server [--port 8888] [--origin http://localhost:8233] [--token-file FILE]

It reads ``DURABOT_SECRET_KEY`` like every durabot process and answers Temporal's codec protocol:
``POST /decode`` and ``POST /encode`` with ``{"payloads": [...]}`` in protobuf JSON. Browsers may call
it only from the ``--origin`` URLs (CORS). With ``--token-file``, requests must carry
``Authorization: Bearer <token>``; run it on a trusted network either way, since it decrypts.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from agent_core.codec import CodecError, DurabotCodec

log = logging.getLogger(__name__)

DEFAULT_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
_ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"


def build_app(codec: DurabotCodec, origins: tuple[str, ...] = DEFAULT_ORIGINS, token: str | None = None) -> web.Application:
    @web.middleware
    async def cors_and_auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        elif token is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
            response = web.json_response({"error": "missing or wrong bearer token"}, status=401)
        else:
            response = await handler(request)
        if origin and origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
            response.headers["Vary"] = "Origin"
        return response

    async def convert(request: web.Request, encode: bool) -> web.Response:
        try:
            payloads = json_format.Parse(await request.text(), Payloads(), ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            return web.json_response({"error": f"the body is not a payloads object: {exc}"}, status=400)
        try:
            out = await (codec.encode if encode else codec.decode)(payloads.payloads)
        except CodecError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(json_format.MessageToDict(Payloads(payloads=out)))

    async def decode(request: web.Request) -> web.Response:
        return await convert(request, encode=False)

    async def encode(request: web.Request) -> web.Response:
        return await convert(request, encode=True)

    app = web.Application(middlewares=[cors_and_auth])
    app.router.add_route("*", "/decode", decode)
    app.router.add_route("*", "/encode", encode)
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("codec server on http://%s:%d (/decode, /encode)", host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    from agent_core.errors import UserError
    from agent_core.settings import Settings

    p = argparse.ArgumentParser(prog="python -m workers.codec_server", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--origin", action="append", help="a Web UI origin allowed to call (repeat for several); "
                   f"default {', '.join(DEFAULT_ORIGINS)}")
    p.add_argument("--token-file", help="file holding the bearer token requests must carry")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load()
        token = Path(args.token_file).read_text().strip() if args.token_file else None
    except (UserError, OSError) as exc:
        raise SystemExit(f"codec server: {exc}") from None
    if not settings.secret_key:
        log.warning("DURABOT_SECRET_KEY is not set: only compressed payloads can be shown")
    app = build_app(DurabotCodec.from_setting(settings.secret_key), tuple(args.origin or DEFAULT_ORIGINS), token)
    try:
        asyncio.run(serve(app, args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
