"""The seed's FastAPI app: its four endpoints, as in the question (plain) or with the answer's
tuning (SEED_TUNED=1: AnyIO's limiter at 200 tokens, a ThreadPoolExecutor of 100 for
run_in_executor). SEED_SLEEP sets the blocking time (the seed used 3 s).

Two changes from the seed's text, both needed to run it: `loop` is taken when the endpoint runs
(the seed calls asyncio.get_running_loop() at import, which raises outside a loop), and the prints
are gone (they would measure the terminal). Run: uvicorn seed_app:app --port N
"""
import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

SLEEP = float(os.environ.get("SEED_SLEEP", "3"))
TUNED = os.environ.get("SEED_TUNED") == "1"
executor = ThreadPoolExecutor(max_workers=100) if TUNED else None


@asynccontextmanager
async def lifespan(app):
    if TUNED:
        # The limiter belongs to the running loop, so it is set once the loop runs.
        to_thread.current_default_thread_limiter().total_tokens = 200
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/test/sync")
def test_sync() -> None:
    time.sleep(SLEEP)


@app.get("/test/async")
async def test_async() -> None:
    await asyncio.sleep(SLEEP)


@app.get("/test/sync_async")
async def test_sync_async() -> None:
    await asyncio.get_running_loop().run_in_executor(executor, time.sleep, SLEEP)


@app.get("/test/sync_async_fastapi")
async def test_sync_async_with_fastapi_thread() -> None:
    await run_in_threadpool(time.sleep, SLEEP)
