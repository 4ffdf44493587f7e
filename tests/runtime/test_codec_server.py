"""The codec server the Temporal Web UI calls to show encrypted payloads."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import sys
import time

import aiohttp
from temporalio.api.common.v1 import Payload

from agent_core.codec import DurabotCodec
from tests.conftest import subprocess_env
from tests.fakes.http import serve_local
from workers.codec_server import build_app

KEY = base64.b64encode(bytes(range(32))).decode()
UI = "http://localhost:8233"


def as_json(p: Payload) -> dict:
    return {"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
            "data": base64.b64encode(p.data).decode()}


async def test_decode_encode_cors_and_token():
    codec = DurabotCodec.from_setting(KEY)
    sealed = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"secret text"')])
    runner, port = await serve_local(build_app(codec, origins=(UI,), token="t0ken"))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.options(f"{base}/decode", headers={
                    "Origin": UI, "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,x-namespace,authorization"}) as r:
                assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == UI
                assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
            body = {"payloads": [as_json(p) for p in sealed]}
            async with http.post(f"{base}/decode", json=body, headers={"Origin": UI}) as r:
                assert r.status == 401  # no token
            auth = {"Origin": UI, "Authorization": "Bearer t0ken", "X-Namespace": "default"}
            async with http.post(f"{base}/decode", json=body, headers=auth) as r:
                assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == UI
                out = (await r.json())["payloads"]
            assert base64.b64decode(out[0]["data"]) == b'"secret text"'
            assert base64.b64decode(out[0]["metadata"]["encoding"]) == b"json/plain"
            async with http.post(f"{base}/encode", json={"payloads": out}, headers=auth) as r:
                again = (await r.json())["payloads"]
            assert base64.b64decode(again[0]["metadata"]["encoding"]) == b"binary/encrypted"
            async with http.post(f"{base}/decode", json={"payloads": again}, headers={
                    **auth, "Origin": "https://evil.example"}) as r:
                assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
            async with http.post(f"{base}/decode", data="not json", headers=auth) as r:
                assert r.status == 400
    finally:
        await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_runs_as_a_module():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workers.codec_server", "--port", str(port)],
                            env=subprocess_env(DURABOT_SECRET_KEY=KEY), stderr=subprocess.PIPE)
    try:
        sealed = await DurabotCodec.from_setting(KEY).encode([Payload(metadata={"encoding": b"json/plain"},
                                                                      data=b'"hi"')])
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as http:
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    async with http.post(f"http://127.0.0.1:{port}/decode",
                                         json={"payloads": [as_json(sealed[0])]}) as r:
                        out = (await r.json())["payloads"]
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "the codec server did not start"
                    await asyncio.sleep(0.1)
        assert base64.b64decode(out[0]["data"]) == b'"hi"'
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_malformed_key_stops_it_with_a_clear_message():
    done = subprocess.run([sys.executable, "-m", "workers.codec_server"], env=subprocess_env(DURABOT_SECRET_KEY="abc"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DURABOT_SECRET_KEY" in done.stderr and "Traceback" not in done.stderr
