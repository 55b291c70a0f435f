"""The example end to end: `sluice serve`, a Python worker with the seed pool (sleep shortened), the
FastAPI app under uvicorn, and concurrent requests to each of the four endpoints."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "clients" / "python" / "tests"))
from support import Server, WorkerProcess, until  # noqa: E402

SLEEP = 0.5
REQUESTS = 40  # per endpoint, all at once: one wave of the pool of 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_seed_app_through_python_workers(tmp_path: Path) -> None:
    server = Server(tmp_path)
    env = dict(os.environ, SEED_SLEEP=str(SLEEP), SLUICE_URL=server.url)
    worker = WorkerProcess(server.url, log=tmp_path / "worker.log", target="tasks:worker", cwd=HERE, env=env)
    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--log-level", "warning"],
                           cwd=str(HERE), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        until(lambda: any(p["name"] == "seed" for p in httpx.get(server.url + "/v1/pools").json()["pools"]), 15, "the seed pool registered")

        def app_up() -> bool:
            try:
                return httpx.get(base + "/get_available_threads").status_code == 200
            except httpx.TransportError:
                return False
        until(app_up, 15, "the app answering")
        assert httpx.get(base + "/get_available_threads").json()["target"] == 50

        async def burst(path: str) -> float:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                started = time.monotonic()
                answers = await asyncio.gather(*(http.get(path) for _ in range(REQUESTS)))
                assert [a.status_code for a in answers] == [200] * REQUESTS, [a.text for a in answers if a.status_code != 200][:3]
                return time.monotonic() - started

        for path in ("/test/sync", "/test/async", "/test/sync_async", "/test/sync_async_fastapi"):
            took = asyncio.run(burst(path))
            # One wave: 40 calls of 0.5 s at once in a pool of 50, not 40 / 12 waves.
            assert took < SLEEP + 2.0, f"{path}: {REQUESTS} requests took {took:.2f} s"
        # A remote pool's figures arrive with the worker's heartbeats (every second), so they may
        # trail the bursts: wait for them instead of guessing how far behind they are.
        def seed_pool() -> dict:
            return next(p for p in httpx.get(server.url + "/v1/pools").json()["pools"] if p["name"] == "seed")
        until(lambda: seed_pool()["processed"] >= 4 * REQUESTS, 10, f"the seed pool reporting {4 * REQUESTS} tasks processed")
        pool = seed_pool()
        assert pool["processed"] == 4 * REQUESTS and pool["failed"] == 0
    finally:
        app.terminate()
        app.wait(10)
        worker.process.terminate()
        worker.process.wait(20)
        server.stop()
