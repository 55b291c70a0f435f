"""Task functions the tests run in real worker processes."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from typing import Any, Callable, Dict, Iterator

from sluice import Discard, Retry, Worker, current_task

worker = Worker()

_lock = threading.Lock()
_running = 0
_high_water = 0
_reached_at = 0.0


@contextlib.contextmanager
def _counted() -> Iterator[dict]:
    """Counts the task as running while inside, and yields the high-water mark: the most tasks
    this process ran at once so far and the wall-clock time it was first reached, as of the exit."""
    global _running, _high_water, _reached_at
    with _lock:
        _running += 1
        if _running > _high_water:
            _high_water, _reached_at = _running, time.time()
    mark: dict = {}
    try:
        yield mark
        with _lock:
            mark.update(high_water=_high_water, reached_at=_reached_at)
    finally:
        with _lock:
            _running -= 1


@worker.task("add")
def add(a: int, b: int) -> int:
    return a + b


@worker.task("add_async")
async def add_async(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


@worker.task("hold")
def hold(seconds: float) -> dict:
    """Sleeps and answers the most tasks this process ran at once so far (a high-water mark) and the
    wall-clock time it was first reached."""
    with _counted() as mark:
        time.sleep(seconds)
    return mark


@worker.task("boom")
def boom() -> None:
    1 / 0


@worker.task("later")
def later() -> None:
    raise Retry("the mail server said 421", after=60)


@worker.task("discard")
def discard() -> None:
    raise Discard("the image is corrupt")


@worker.task("not_json")
def not_json() -> object:
    return object()


@worker.task("until_cancelled")
def until_cancelled() -> str:
    task = current_task()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if task.cancel_requested:
            raise RuntimeError("stopped: the cancel reached the function")
        time.sleep(0.05)
    return "never cancelled"


@worker.task("until_cancelled_async")
async def until_cancelled_async() -> str:
    await asyncio.sleep(30)
    return "never cancelled"


@worker.task("hold_async")
async def hold_async(seconds: float) -> dict:
    """`hold` for the event loop: the most `async def` tasks this process ran at once so far."""
    with _counted() as mark:
        await asyncio.sleep(seconds)
    return mark


@worker.task("not_a_number")
def not_a_number() -> float:
    return float("nan")


@worker.task("retry_never")
def retry_never(after: str) -> None:
    raise Retry("asked with a bad delay", after={"inf": float("inf"), "negative": -1.0}[after])


@worker.task("huge")
def huge(megabytes: float) -> str:
    """A result larger than the server takes in one request body (1 MiB by default)."""
    return "x" * int(megabytes * 1024 * 1024)


@worker.task("touch")
def touch(path: str) -> str:
    """Leaves a mark that it ran."""
    with open(path, "w") as f:
        f.write("ran")
    return path


_called_on: Dict[str, str] = {}


def _traced(function: Callable[..., Any]) -> Callable[..., Any]:
    """An ordinary decorator: its wrapper (functools.wraps) is a plain function that returns the
    coroutine of the `async def` it wraps. It notes the thread it is called on."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _called_on[current_task().id] = threading.current_thread().name
        return function(*args, **kwargs)
    return wrapper


@worker.task("add_traced")
@_traced
async def add_traced(a: int, b: int) -> dict:
    await asyncio.sleep(0.01)
    return {"sum": a + b, "called_on": _called_on.pop(current_task().id)}


async def _sum_and_kind(a: int, b: int) -> dict:
    await asyncio.sleep(0.01)
    return {"sum": a + b, "kind": current_task().kind}


@worker.task("add_later")
def add_later(a: int, b: int) -> Any:
    """A plain function that returns a coroutine (no functools.wraps to tell it is async)."""
    return _sum_and_kind(a, b)
