"""Producer side: enqueue tasks, read and wait for them, cancel them; sync (`Client`) and async
(`AsyncClient`, for FastAPI's `async def` endpoints). Both build the same requests (`_Call`) and read
the same answers (`_answer`); only the transport differs."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, cast
from urllib.parse import quote

import httpx

from .errors import SluiceError, TaskFailed, TaskTimeout
from .task import Task

DEFAULT_URL = "http://127.0.0.1:8000"
#: Longest single `?wait=` asked of the server by default; longer waits are several requests.
MAX_WAIT_PER_REQUEST = 60.0
#: Seconds beyond a request's own wait before the client gives up on the server.
SLACK = 10.0
#: Connections a client keeps to the server at most, by default: each call that waits holds one.
MAX_CONNECTIONS = 1000


@dataclass
class _Call:
    """One API request, built once for both transports."""

    method: str
    path: str
    json: Any = None
    params: Optional[Dict[str, str]] = None
    wait: float = 0.0

    @property
    def timeout(self) -> float:
        return self.wait + SLACK


def _answer(response: httpx.Response) -> Any:
    """The JSON body of a success, or the server's error raised as `SluiceError`."""
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    if response.status_code >= 400:
        raise SluiceError.from_response(response.status_code, body, f"HTTP {response.status_code}: {response.text[:200]}",
                                        response.headers.get("Retry-After"))
    return body


def _transport_error(url: str, call: _Call, error: httpx.TransportError, max_connections: int) -> SluiceError:
    """A request that got no answer: a timeout is told apart from a server that cannot be reached,
    since a request that changes something may have been applied all the same, and both from a
    client whose connections were all taken, which sent nothing."""
    if isinstance(error, httpx.PoolTimeout):
        return SluiceError(0, "pool_timeout", f"no free connection to the Sluice server at {url} within {call.timeout:g} s: "
                           f"all {max_connections} of this client's connections were in use by other calls (each call that "
                           "waits holds one); the request was not sent. Give the client more (max_connections=) or make "
                           "fewer calls at once")
    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
        return SluiceError(0, "timeout", f"no answer from the Sluice server at {url} within {call.timeout:g} s"
                           + ("; the request may have been applied (an idempotency_key makes sending it again safe)"
                              if call.method != "GET" else ""))
    return SluiceError(0, "unreachable", f"cannot reach the Sluice server at {url}: {error}")


def _max_wait(seconds: float) -> float:
    """The per-request wait a client was given: the server refuses a `?wait=` above its `--max-wait`."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 3600:
        raise ValueError(f"max_wait={seconds!r}: must be more than 0 and at most 3600 seconds, and at most the server's --max-wait")
    return float(seconds)


def _segment(value: str) -> str:
    """`value` as one path segment: a task id or pool name from a user (a web app's query
    parameter, say) must not reach another endpoint (`../queues/mail/pause?`)."""
    return quote(str(value), safe=":")


def _headers(token: Optional[str]) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def env_token() -> Optional[str]:
    """The token from `SLUICE_TOKEN`: the server reads the variable as a comma-separated list, so a
    client sends its first entry, as the `sluice` command line does."""
    entries = [entry.strip() for entry in os.environ.get("SLUICE_TOKEN", "").split(",")]
    return next((entry for entry in entries if entry), None)


def _enqueue_call(kind: str, args: Optional[Dict[str, Any]], queue: Optional[str], delay: Optional[float],
                  priority: Optional[int], max_attempts: Optional[int], timeout: Optional[float],
                  idempotency_key: Optional[str], durable: bool, wait: Optional[float]) -> _Call:
    body: Dict[str, Any] = {"kind": kind, "args": args or {}}
    for name, value in (("queue", queue), ("delay", delay), ("priority", priority), ("max_attempts", max_attempts),
                        ("timeout", timeout), ("idempotency_key", idempotency_key)):
        if value is not None:
            body[name] = value
    if not durable:
        body["durable"] = False
    return _Call("POST", "/v1/tasks", json=body, params=_wait_param(wait), wait=wait or 0.0)


def _batch_call(tasks: List[Dict[str, Any]], wait: Optional[float]) -> _Call:
    return _Call("POST", "/v1/tasks/batch", json=list(tasks), params=_wait_param(wait), wait=wait or 0.0)


def _batch_answer(body: Any) -> List[Task]:
    return [Task.from_json(task) for task in body["tasks"]]


def _wait_param(wait: Optional[float]) -> Optional[Dict[str, str]]:
    return None if wait is None else {"wait": f"{wait:g}"}


def _settled(task: Task, deadline: float, seconds: float) -> Any:
    """The result of a final task, `TaskFailed` for a failed one, `TaskTimeout` past the deadline;
    `None` means wait again."""
    if task.state == "succeeded":
        return task
    if task.done:
        raise TaskFailed(task)
    if time.monotonic() >= deadline:
        raise TaskTimeout(task, seconds)
    return None


class Client:
    """A synchronous client of a Sluice server.

    >>> client = Client("http://127.0.0.1:8000")
    >>> task = client.enqueue("resize", {"width": 300}, queue="images")
    >>> client.result(task.id, timeout=30)

    `max_wait` is the longest `?wait=` one request asks for while `result` or `run` waits (default
    60 s); against a server started with a shorter `--max-wait`, give that instead.
    `max_connections` bounds the connections kept to the server, shared by every thread that uses
    this client (default 1000, as `AsyncClient`): a call that waits holds one, and a call that finds
    none free within its timeout raises `SluiceError` with code `pool_timeout`.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 transport: Optional[httpx.BaseTransport] = None, max_connections: int = MAX_CONNECTIONS,
                 max_wait: float = MAX_WAIT_PER_REQUEST) -> None:
        self.url = (url or os.environ.get("SLUICE_URL") or DEFAULT_URL).rstrip("/")
        self.max_wait = _max_wait(max_wait)
        self.max_connections = max_connections
        # Each waiting call holds a connection, so the limit bounds how many can wait at once.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(base_url=self.url, headers=_headers(token or env_token()),
                                  transport=transport, timeout=SLACK, limits=limits)

    def _send(self, call: _Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, json=call.json, params=call.params, timeout=call.timeout)
        except httpx.TransportError as error:
            raise _transport_error(self.url, call, error, self.max_connections) from error
        return _answer(response)

    def enqueue(self, kind: str, args: Optional[Dict[str, Any]] = None, *, queue: Optional[str] = None,
                delay: Optional[float] = None, priority: Optional[int] = None, max_attempts: Optional[int] = None,
                timeout: Optional[float] = None, idempotency_key: Optional[str] = None, durable: bool = True,
                wait: Optional[float] = None) -> Task:
        """Enqueues a task; with `wait`, answers when it is final or after `wait` seconds."""
        return Task.from_json(self._send(_enqueue_call(kind, args, queue, delay, priority, max_attempts, timeout,
                                                       idempotency_key, durable, wait)))

    def enqueue_many(self, tasks: List[Dict[str, Any]], wait: Optional[float] = None) -> List[Task]:
        """Enqueues 1 to 1000 tasks atomically, each a dict as `POST /v1/tasks` takes it (`kind`, `args`,
        `queue`, ...); with `wait`, answers when all are final or after `wait` seconds (a group's `get()`)."""
        return _batch_answer(self._send(_batch_call(tasks, wait)))

    def status(self, id: str, wait: Optional[float] = None) -> Task:
        """The task now or, with `wait`, once final (at most `wait` seconds later)."""
        return Task.from_json(self._send(_Call("GET", f"/v1/tasks/{_segment(id)}", params=_wait_param(wait), wait=wait or 0.0)))

    def result(self, id: str, timeout: float = 300.0) -> Any:
        """Waits for the task and returns its result; raises `TaskFailed` or `TaskTimeout`."""
        return self._result(id, time.monotonic() + timeout, timeout)

    def _result(self, id: str, deadline: float, timeout: float) -> Any:
        while True:
            task = self.status(id, wait=max(0.0, min(self.max_wait, deadline - time.monotonic())))
            settled = _settled(task, deadline, timeout)
            if settled is not None:
                return settled.result

    def run(self, kind: str, args: Optional[Dict[str, Any]] = None, *, timeout: float = 300.0,
            task_timeout: Optional[float] = None, **options: Any) -> Any:
        """Enqueues a task, waits for it and returns its result: a blocking call moved to a pool.
        `timeout` bounds the whole call, the enqueue's wait included; `task_timeout` is the task's
        own (each attempt's) timeout, `enqueue`'s `timeout`."""
        deadline = time.monotonic() + timeout
        task = self.enqueue(kind, args, wait=min(self.max_wait, timeout), timeout=task_timeout, **options)
        settled = _settled(task, deadline, timeout)
        return settled.result if settled is not None else self._result(task.id, deadline, timeout)

    def cancel(self, id: str) -> Task:
        """Cancels a waiting task, or asks the worker running it to stop."""
        return Task.from_json(self._send(_Call("POST", f"/v1/tasks/{_segment(id)}/cancel")))

    def retry(self, id: str) -> Task:
        """Puts a failed or cancelled task back in its queue."""
        return Task.from_json(self._send(_Call("POST", f"/v1/tasks/{_segment(id)}/retry")))

    def pools(self) -> List[Dict[str, Any]]:
        """Every pool across every live process (`GET /v1/pools`)."""
        return cast(List[Dict[str, Any]], self._send(_Call("GET", "/v1/pools"))["pools"])

    def resize(self, pool: str, concurrency: int) -> Dict[str, Any]:
        """Sets a pool's concurrency in every process that runs it (`PATCH /v1/pools/NAME`)."""
        return cast(Dict[str, Any], self._send(_Call("PATCH", f"/v1/pools/{_segment(pool)}", json={"concurrency": concurrency})))

    def workers(self) -> List[Dict[str, Any]]:
        """The live processes (`GET /v1/workers`)."""
        return cast(List[Dict[str, Any]], self._send(_Call("GET", "/v1/workers"))["workers"])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient:
    """The same calls as `Client`, for `async def` code: `await client.run("resize", {...})`."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 transport: Optional[httpx.AsyncBaseTransport] = None, max_connections: int = MAX_CONNECTIONS,
                 max_wait: float = MAX_WAIT_PER_REQUEST) -> None:
        self.url = (url or os.environ.get("SLUICE_URL") or DEFAULT_URL).rstrip("/")
        self.max_wait = _max_wait(max_wait)
        self.max_connections = max_connections
        # Each waiting call holds a connection, so the limit bounds how many can wait at once.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(base_url=self.url, headers=_headers(token or env_token()),
                                       transport=transport, timeout=SLACK, limits=limits)

    async def _send(self, call: _Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, json=call.json, params=call.params, timeout=call.timeout)
        except httpx.TransportError as error:
            raise _transport_error(self.url, call, error, self.max_connections) from error
        return _answer(response)

    async def enqueue(self, kind: str, args: Optional[Dict[str, Any]] = None, *, queue: Optional[str] = None,
                      delay: Optional[float] = None, priority: Optional[int] = None, max_attempts: Optional[int] = None,
                      timeout: Optional[float] = None, idempotency_key: Optional[str] = None, durable: bool = True,
                      wait: Optional[float] = None) -> Task:
        """Enqueues a task; with `wait`, answers when it is final or after `wait` seconds."""
        return Task.from_json(await self._send(_enqueue_call(kind, args, queue, delay, priority, max_attempts, timeout,
                                                             idempotency_key, durable, wait)))

    async def enqueue_many(self, tasks: List[Dict[str, Any]], wait: Optional[float] = None) -> List[Task]:
        """Enqueues 1 to 1000 tasks atomically; with `wait`, answers when all are final (see `Client`)."""
        return _batch_answer(await self._send(_batch_call(tasks, wait)))

    async def status(self, id: str, wait: Optional[float] = None) -> Task:
        """The task now or, with `wait`, once final (at most `wait` seconds later)."""
        return Task.from_json(await self._send(_Call("GET", f"/v1/tasks/{_segment(id)}", params=_wait_param(wait), wait=wait or 0.0)))

    async def result(self, id: str, timeout: float = 300.0) -> Any:
        """Waits for the task and returns its result; raises `TaskFailed` or `TaskTimeout`."""
        return await self._result(id, time.monotonic() + timeout, timeout)

    async def _result(self, id: str, deadline: float, timeout: float) -> Any:
        while True:
            task = await self.status(id, wait=max(0.0, min(self.max_wait, deadline - time.monotonic())))
            settled = _settled(task, deadline, timeout)
            if settled is not None:
                return settled.result

    async def run(self, kind: str, args: Optional[Dict[str, Any]] = None, *, timeout: float = 300.0,
                  task_timeout: Optional[float] = None, **options: Any) -> Any:
        """Enqueues a task, waits for it and returns its result, without blocking the event loop.
        `timeout` bounds the whole call, the enqueue's wait included; `task_timeout` is the task's
        own (each attempt's) timeout, `enqueue`'s `timeout`."""
        deadline = time.monotonic() + timeout
        task = await self.enqueue(kind, args, wait=min(self.max_wait, timeout), timeout=task_timeout, **options)
        settled = _settled(task, deadline, timeout)
        return settled.result if settled is not None else await self._result(task.id, deadline, timeout)

    async def cancel(self, id: str) -> Task:
        """Cancels a waiting task, or asks the worker running it to stop."""
        return Task.from_json(await self._send(_Call("POST", f"/v1/tasks/{_segment(id)}/cancel")))

    async def retry(self, id: str) -> Task:
        """Puts a failed or cancelled task back in its queue."""
        return Task.from_json(await self._send(_Call("POST", f"/v1/tasks/{_segment(id)}/retry")))

    async def pools(self) -> List[Dict[str, Any]]:
        """Every pool across every live process (`GET /v1/pools`)."""
        return cast(List[Dict[str, Any]], (await self._send(_Call("GET", "/v1/pools")))["pools"])

    async def resize(self, pool: str, concurrency: int) -> Dict[str, Any]:
        """Sets a pool's concurrency in every process that runs it (`PATCH /v1/pools/NAME`)."""
        return cast(Dict[str, Any], await self._send(_Call("PATCH", f"/v1/pools/{_segment(pool)}", json={"concurrency": concurrency})))

    async def workers(self) -> List[Dict[str, Any]]:
        """The live processes (`GET /v1/workers`)."""
        return cast(List[Dict[str, Any]], (await self._send(_Call("GET", "/v1/workers")))["workers"])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


__all__ = ["Client", "AsyncClient"]
