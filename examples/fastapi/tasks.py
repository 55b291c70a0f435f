"""The seed's blocking functions, run by a Python Sluice worker:

    sluice-worker tasks:worker --pool seed=seed:50

`SEED_SLEEP` (seconds, default 3) is the seed's `time.sleep(3)`; the test makes it short."""
import asyncio
import os
import time

from sluice import PoolSpec, Worker

SLEEP = float(os.environ.get("SEED_SLEEP", "3"))

worker = Worker(pools=[PoolSpec("seed", ["seed"], 50)])


@worker.task("sync_func")
def sync_func() -> None:
    time.sleep(SLEEP)
    print("sync func")


@worker.task("async_func")
async def async_func() -> None:
    await asyncio.sleep(SLEEP)
    print("async func")
