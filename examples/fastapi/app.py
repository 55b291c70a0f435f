"""The seed's FastAPI app (four endpoints around a 3-second sleep), rebuilt on Sluice: each endpoint
enqueues its function and awaits the result; the blocking call runs in a Python worker's pool
named `seed`, whose size is in `GET /v1/pools` (and `/get_available_threads` below) and changes
with `PATCH /v1/pools/seed`, instead of behind AnyIO's 40 tokens or the executor's 12 threads.

    uvicorn app:app --port 8001        # with SLUICE_URL pointing at `sluice serve`
"""
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict

from fastapi import FastAPI

from sluice import AsyncClient

sluice = AsyncClient()  # SLUICE_URL, SLUICE_TOKEN


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await sluice.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/test/sync")
async def test_sync() -> None:
    await sluice.run("sync_func", queue="seed")
    print("sync")


@app.get("/test/async")
async def test_async() -> None:
    await sluice.run("async_func", queue="seed")
    print("async")


@app.get("/test/sync_async")
async def test_sync_async() -> None:
    # The seed ran time.sleep through loop.run_in_executor(None, …): 12 threads on its machine.
    await sluice.run("sync_func", queue="seed")
    print("sync async")


@app.get("/test/sync_async_fastapi")
async def test_sync_async_with_fastapi_thread() -> None:
    # The seed ran time.sleep through run_in_threadpool: AnyIO's 40 tokens.
    await sluice.run("sync_func", queue="seed")
    print("sync async with fastapi thread")


@app.get("/get_available_threads")
async def get_available_threads() -> Dict[str, Any]:
    """The seed's question, answered by the pool itself: target, busy, free, waiting."""
    pool = next((p for p in await sluice.pools() if p["name"] == "seed"), None)
    if pool is None:
        return {"error": "no worker runs the seed pool; start one: sluice-worker tasks:worker"}
    return {key: pool[key] for key in ("target", "actual", "busy", "free", "waiting")}
