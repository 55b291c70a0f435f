"""Worker side: run Python functions as Sluice tasks.

    worker = Worker(pools=[PoolSpec("default", ["default"], 10)])

    @worker.task("resize")
    def resize(width: int) -> dict: ...

    worker.run()   # until SIGTERM or SIGINT

Roles, each on its own thread so that a slow one never stalls another: the claimer long-polls for
as many tasks as the pools have free slots; the pools run them (plain functions on their threads,
`async def` ones on one event loop); the completer reports outcomes in batches; the heartbeater
renews every lease each second, stops cancelled, lost and overdue tasks, and applies operators'
pool changes. See docs/WORKER-PROTOCOL.md for the HTTP calls behind them."""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import logging
import math
import os
import re
import signal
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Set, cast

from .client import env_token
from .context import TaskContext, _current
from .errors import Discard, Retry, SluiceError
from .pool import Pool, PoolSpec
from .protocol import WorkerAPI

log = logging.getLogger("sluice.worker")

#: How long one claim waits on the server for tasks; also the most a shutdown waits for the claimer.
CLAIM_WAIT = 2.0
#: The most tasks one claim may ask for, all pools together (the server refuses more).
MAX_CLAIM = 1000
#: The longest error text worth sending: the server keeps no more than this of it.
MAX_ERROR = 64 * 1024
#: The longest `Retry(after=…)` the server accepts, in seconds (366 days).
MAX_RETRY_AFTER = 31_622_400


@dataclass
class _Claimed:
    """A task this worker holds a lease on, from its claim to its reported outcome."""

    context: TaskContext
    token: str
    function: Optional[Callable[..., Any]]
    pool: Pool
    deadline: float
    #: The outcome is reported (or the lease is gone): a late result of the function is dropped.
    settled: bool = False
    started_at: Optional[float] = None
    #: The asyncio task of an `async def` function, once it started: what a cancel cancels.
    aio_task: Optional["asyncio.Task[Any]"] = None
    stuck: bool = False

    @property
    def lease(self) -> Dict[str, Any]:
        return {"id": self.context.id, "token": self.token, "attempt": self.context.attempt}

    @property
    def renewal(self) -> Dict[str, Any]:
        """The lease as a heartbeat names it: the task and its token, all the server needs to renew it."""
        return {"id": self.context.id, "token": self.token}


class _UnknownKind(Exception):
    """A task of a kind this worker has no function for: an ordinary failure, retried by the task's
    policy, so that another process that knows the kind may run it next time."""


class Worker:
    """Runs registered functions for tasks claimed from a Sluice server, in pools whose size shows in
    `GET /v1/pools` and changes with `PATCH /v1/pools/NAME`."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 pools: Optional[Sequence[PoolSpec]] = None, grace: float = 30.0, worker_id: Optional[str] = None,
                 prefetch: int = 0) -> None:
        self.url = (url or os.environ.get("SLUICE_URL") or "http://127.0.0.1:8000").rstrip("/")
        self.token = token or env_token()
        self.pool_specs: List[PoolSpec] = list(pools or [PoolSpec("default", ["default"], 10)])
        self.grace = grace
        if prefetch < 0:
            raise ValueError(f"prefetch must be 0 or more, not {prefetch}")
        #: Tasks each pool claims beyond its free slots, so that its threads find the next task
        #: waiting instead of waiting a round trip for it (Celery's prefetch). They hold their leases
        #: meanwhile, and another worker with free slots cannot take them: keep it 0 for long tasks.
        self.prefetch = prefetch
        host = socket.gethostname()
        # The server accepts letters, digits and _ - . : in names.
        self.id = worker_id or re.sub(r"[^A-Za-z0-9_.:-]", "-", f"py:{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}")[:128]
        self._host = host
        self._functions: Dict[str, Callable[..., Any]] = {}
        self._mutex = threading.RLock()
        self._lock = threading.Condition(self._mutex)
        self._pools: Dict[str, Pool] = {}
        self._held: Dict[str, _Claimed] = {}
        self._outbox: List[Dict[str, Any]] = []
        #: Batches of outcomes being reported: their leases are renewed until the server has them.
        self._in_flight: List[List[Dict[str, Any]]] = []
        self._sending = 0
        #: When a heartbeat last came through (monotonic): leases stand until a lease after it.
        self._last_beat = time.monotonic()
        #: Set by the drain: outcomes still failing to be reported are given up at this time.
        self._flush_deadline: Optional[float] = None
        self._applied: Dict[str, str] = {}
        self._stop = threading.Event()
        #: Set when the drain is over: the heartbeater and the completer end.
        self._finished = threading.Event()
        self._stopping = False
        self._heartbeat_interval = 1.0
        #: The server's lease and longest claim wait, from registration.
        self._lease = 30.0
        self._claim_wait = CLAIM_WAIT
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread: Optional[threading.Thread] = None
        #: Kinds claimed without a function here, each logged once.
        self._unknown: Set[str] = set()

    # Registration of functions

    def task(self, kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Registers the decorated function for tasks of `kind`; it is called with the task's args as
        keyword arguments. A plain function runs on a pool thread, an `async def` on the event loop."""
        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            if kind in self._functions:
                raise ValueError(f"kind {kind!r} is registered twice: {self._functions[kind].__qualname__} and {function.__qualname__}")
            self._functions[kind] = function
            return function
        return register

    @property
    def kinds(self) -> List[str]:
        return sorted(self._functions)

    # Figures

    def pool_figures(self) -> List[Dict[str, Any]]:
        """Each pool's capacity as the server shows it."""
        with self._lock:
            return [pool.figures() for pool in self._pools.values()]

    def high_water(self, pool: str = "default") -> int:
        """The most tasks `pool` ran at once so far."""
        with self._lock:
            return self._pools[pool].high_water

    def _description(self) -> Dict[str, Any]:
        return {"host": self._host, "pid": os.getpid(), "kinds": self.kinds, "pools": self.pool_figures()}

    # Running

    def run(self, install_signal_handlers: bool = True) -> None:
        """Registers with the server and runs tasks until `stop()`, SIGTERM or SIGINT; then stops
        claiming, lets running tasks finish within the grace period and hands back the rest."""
        if not self._functions:
            raise ValueError("no task functions registered: decorate functions with @worker.task(\"kind\")")
        repeated = duplicate_pool(self.pool_specs)
        if repeated is not None:
            raise ValueError(f"pool {repeated} is given twice: each pool needs a name of its own")
        for spec in self.pool_specs:
            self._pools[spec.name] = Pool(spec, self._lock, self._mutex, self._run_sync, self._start_async, self.prefetch)
        api = WorkerAPI(self.url, self.token, self.id)
        try:
            answer = api.register(self._description())
        except SluiceError as error:
            raise SluiceError(error.status, error.code, f"cannot register worker {self.id} with {self.url}: {error.message}", error.field) from error
        self._heartbeat_interval = float(answer.get("heartbeat_interval", 1.0))
        self._lease = float(answer.get("lease", 30.0))
        # A server started with a shorter --max-wait refuses longer claim waits.
        self._claim_wait = min(CLAIM_WAIT, float(answer.get("max_wait", CLAIM_WAIT)))
        self._apply_settings(answer.get("pools") or [])
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            self._install_signal_handlers()
        if any(_is_async(f) for f in self._functions.values()):
            self._start_loop()
        roles = [threading.Thread(target=self._claimer, name="sluice-claimer", daemon=True),
                 threading.Thread(target=self._completer, name="sluice-completer", daemon=True),
                 threading.Thread(target=self._heartbeater, name="sluice-heartbeater", daemon=True)]
        for thread in roles:
            thread.start()
        log.info("worker %s: pools %s on %s", self.id,
                 ", ".join(f"{p.name}={','.join(p.queues)}:{p.target}" for p in self._pools.values()), self.url)
        while not self._stop.wait(0.5):  # a timed wait, so that signal handlers run promptly
            pass
        self._drain(api, roles)

    def stop(self) -> None:
        """Asks `run()` to drain and return (what SIGTERM does)."""
        self._stop.set()

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, frame: Any) -> None:
            if self._stop.is_set():
                log.warning("second signal: stopping at once; unfinished tasks return when their leases expire")
                os._exit(1)
            log.info("signal %d: draining (grace %g s)", signum, self.grace)
            self._stop.set()
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _drain(self, api: WorkerAPI, roles: List[threading.Thread]) -> None:
        with self._lock:
            self._stopping = True
            # Claimed tasks not started are handed back now, before a pool thread starts one; a
            # claim still in flight hands its tasks back when it returns (`_received`).
            unstarted = [item for pool in self._pools.values() for item in pool.take_unstarted()]
            for item in unstarted:
                self._settle(item)
            self._lock.notify_all()
        self._release(api, unstarted)
        roles[0].join(CLAIM_WAIT + 15)  # the claimer
        deadline = time.monotonic() + self.grace
        with self._lock:
            while any(pool.busy for pool in self._pools.values()) and time.monotonic() < deadline:
                self._lock.wait(max(0.0, min(0.5, deadline - time.monotonic())))
            late = [item for item in self._held.values() if not item.settled and item.started_at is not None]
            for item in late:
                item.context.cancelled.set()
                self._settle(item)
        if late:
            log.warning("grace of %g s over: handing back %d running task(s)", self.grace, len(late))
            for item in late:
                self._cancel_async(item)
        self._release(api, late, "running")
        # Outcomes already reported are sent before leaving, retried for up to another grace
        # period (at least 10 s) when the server does not take them.
        with self._lock:
            flush_by = time.monotonic() + max(10.0, self.grace)
            self._flush_deadline = flush_by
            while (self._outbox or self._sending) and time.monotonic() < flush_by + 1:
                self._lock.wait(0.2)
        self._stop_everything()
        api.deregister()
        api.close()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _stop_everything(self) -> None:
        with self._lock:
            self._held.clear()
            self._finished.set()
            self._lock.notify_all()

    def _cancel_async(self, item: _Claimed) -> None:
        """Cancels a running `async def` task (a plain function can only be asked, via its context)."""
        if item.aio_task is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(item.aio_task.cancel)

    def _release(self, api: WorkerAPI, items: List[_Claimed], what: str = "unstarted") -> None:
        if items:
            _release(api, [item.lease for item in items], what)

    def _settle(self, item: _Claimed) -> None:
        """Marks `item` done with (lock held): its lease is no longer renewed or reported."""
        item.settled = True
        self._held.pop(item.context.id, None)

    # The claimer

    def _claimer(self) -> None:
        """Long-polls for free slots. While outcomes are on their way, their refill claims instead."""
        api = WorkerAPI(self.url, self.token, self.id)
        backoff = 0.1
        idle = 0.05
        while True:
            with self._lock:
                while not self._stopping and (self._outbox or self._sending or not any(p.free for p in self._pools.values())):
                    self._lock.wait(1.0)
                if self._stopping:
                    break
                asks = self._reserve()
            try:
                tasks = api.claim(asks, wait=self._claim_wait)
                backoff = 0.1
            except Exception as error:  # whatever it is, the claimer must go on: without it nothing runs
                self._received(api, asks, [])
                log.warning("claim failed (trying again in %g s): %s", backoff, error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._received(api, asks, tasks)
            # A server that holds no claim open (`--max-wait 0`) answers empty at once: pause
            # between such claims instead of asking a thousand times a second.
            if tasks or self._claim_wait >= 0.1:
                idle = 0.05
            else:
                self._stop.wait(idle)
                idle = min(idle * 2, 1.0)
        api.close()

    def _reserve(self) -> List[Dict[str, Any]]:
        """Asks for every pool's free slots (at most MAX_CLAIM in all), and counts them taken until the
        answer (lock held)."""
        asks: List[Dict[str, Any]] = []
        room = MAX_CLAIM
        for pool in self._pools.values():
            free = min(pool.free, room)
            if free:
                asks.append({"name": pool.name, "queues": pool.queues, "free": free})
                pool.reserved += free
                room -= free
        return asks

    def _received(self, api: WorkerAPI, asks: List[Dict[str, Any]], tasks: List[Dict[str, Any]]) -> None:
        """Frees what `asks` reserved and runs `tasks`, or hands them back when the drain has begun."""
        with self._lock:
            for ask in asks:
                self._pools[ask["name"]].reserved -= ask["free"]
            draining = self._stop.is_set()
            if not draining:
                self._dispatch(tasks)
            self._lock.notify_all()
        if draining and tasks:
            _release(api, [_lease(t) for t in tasks])

    def _dispatch(self, tasks: List[Dict[str, Any]]) -> None:
        now = time.monotonic()
        with self._lock:  # reentrant: callers may hold it
            for task in tasks:
                pool = self._pools[task["pool"]]
                context = TaskContext(id=task["id"], kind=task["kind"], queue=task["queue"], pool=pool.name,
                                      attempt=task["attempt"], max_attempts=task["max_attempts"], args=task["args"] or {},
                                      timeout=float(task["timeout"]))
                item = _Claimed(context, task["token"], self._functions.get(task["kind"]), pool, now + context.timeout)
                self._held[context.id] = item
                if item.function is not None and _is_async(item.function) and self._loop is not None:
                    pool.submit_async(item)
                else:
                    # Unknown kinds too: the pool thread fails them, like any other outcome.
                    pool.submit_sync(item)

    def _start_async(self, item: _Claimed) -> None:
        """Starts an `async def` task on the event loop; its pool gave it a slot (lock held)."""
        assert self._loop is not None
        item.started_at = time.monotonic()
        self._loop.call_soon_threadsafe(self._loop.create_task, self._run_async(item))

    # Running one task

    def _call(self, item: _Claimed) -> Callable[[], Any]:
        function = item.function
        if function is None:
            kind, queue = item.context.kind, item.context.queue
            with self._lock:
                first = kind not in self._unknown
                self._unknown.add(kind)
            if first:
                log.warning("task %s: no function for kind %s (queue %s): failing the attempt, to be retried by the task's policy",
                            item.context.id, kind, queue)
            raise _UnknownKind(f"no function for kind {kind} in worker {self.id} (kinds: {', '.join(self.kinds)}); "
                               f"every process that drains queue {queue} must know every kind sent to it: "
                               "give these tasks their own queue, or run `sluice serve --no-pool`")
        return lambda: function(**item.context.args)

    def _begin(self, item: _Claimed, aio_task: "Optional[asyncio.Task[Any]]" = None) -> bool:
        """Whether `item` is still to run; one lost or cancelled before it started gives its slot back."""
        with self._lock:
            if item.settled:
                item.pool.finished(None, False, was_stuck=item.stuck)
                return False
            if item.context.cancel_requested:
                # Cancelled while it waited for a slot (prefetched): reported so, never run.
                item.pool.finished(None, False, was_stuck=item.stuck)
                self._settle(item)
                self._outbox.append(dict(item.lease, error="cancelled before it started", cancel=True))
                self._lock.notify_all()
                return False
            if aio_task is None:
                item.started_at = time.monotonic()
            item.aio_task = aio_task
            return True

    def _run_sync(self, item: _Claimed) -> None:
        if not self._begin(item):
            return
        reset = _current.set(item.context)
        try:
            value = self._call(item)()
            if inspect.isawaitable(value):
                # A plain function that returns a coroutine (a decorator's wrapper around an async
                # def, a partial): awaited on the worker's event loop, this thread waiting for it.
                value = self._await_on_loop(item, value)
            outcome = self._success(item, value)
        except BaseException as error:  # a task's failure must never kill the pool's thread
            outcome = self._failure(item, error)
        finally:
            _current.reset(reset)
        self._finish(item, outcome)

    def _await_on_loop(self, item: _Claimed, awaitable: Awaitable[Any]) -> Any:
        """Awaits `awaitable` on the event loop (started now if no function was `async def`) and
        returns its value; as an asyncio task, a cancel or a timeout cancels it."""
        with self._mutex:
            if self._loop is None:
                self._start_loop()
            loop = self._loop
        assert loop is not None

        async def run() -> Any:
            reset = _current.set(item.context)
            try:
                with self._lock:
                    item.aio_task = asyncio.current_task()
                    stop = item.settled or item.context.cancel_requested
                if stop:
                    if inspect.iscoroutine(awaitable):
                        awaitable.close()  # never to run: no "never awaited" warning
                    raise asyncio.CancelledError()
                return await awaitable
            finally:
                _current.reset(reset)
        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    async def _run_async(self, item: _Claimed) -> None:
        if not self._begin(item, asyncio.current_task()):
            return
        reset = _current.set(item.context)
        try:
            outcome = self._success(item, await self._call(item)())
        except BaseException as error:
            outcome = self._failure(item, error)
        finally:
            _current.reset(reset)
        self._finish(item, outcome)

    def _success(self, item: _Claimed, value: Any) -> Dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)  # NaN and Infinity are not JSON either
        except (TypeError, ValueError) as error:
            return dict(item.lease, error=f"the result of {item.context.kind} is not JSON: {error}", retry=False)
        return dict(item.lease, result=value)

    def _failure(self, item: _Claimed, error: BaseException) -> Dict[str, Any]:
        if isinstance(error, (asyncio.CancelledError, concurrent.futures.CancelledError, KeyboardInterrupt)) or item.context.cancel_requested:
            return dict(item.lease, error=f"cancelled while running: {type(error).__name__}: {error}", cancel=True)
        if isinstance(error, Retry):
            outcome = dict(item.lease, error=_clip(f"Retry: {error}"))
            after = _seconds(error.after)
            if after is not None:
                outcome["retry_after"] = after
            elif error.after is not None:
                outcome["error"] += (f" (after={error.after!r} is not a number of seconds from 0 to {MAX_RETRY_AFTER}: "
                                     "the usual backoff applies)")
            return outcome
        if isinstance(error, Discard):
            return dict(item.lease, error=_clip(f"Discard: {error}"), retry=False)
        if isinstance(error, _UnknownKind):
            return dict(item.lease, error=_clip(str(error)))
        return dict(item.lease, error=_clip("".join(traceback.format_exception(type(error), error, error.__traceback__))))

    def _finish(self, item: _Claimed, outcome: Dict[str, Any]) -> None:
        with self._lock:
            seconds = time.monotonic() - (item.started_at or time.monotonic())
            ours = not item.settled
            item.pool.finished(seconds if ours else None, "error" in outcome, was_stuck=item.stuck)
            if ours:
                self._settle(item)
                self._outbox.append(outcome)
            self._lock.notify_all()

    # The completer

    def _completer(self) -> None:
        api = WorkerAPI(self.url, self.token, self.id)
        while True:
            with self._lock:
                while not self._outbox and not self._finished.is_set():
                    self._lock.wait(1.0)
                if not self._outbox:
                    break
                # Everything that arrived while the last batch was written goes in one request, which
                # also claims tasks for the slots free by then (unless the drain has begun).
                batch, self._outbox = self._outbox[:1000], self._outbox[1000:]
                self._sending += 1
                self._in_flight.append(batch)
                asks = [] if self._stop.is_set() else self._reserve()
            try:
                tasks = self._send(api, batch, asks)
            finally:
                with self._lock:
                    self._in_flight.remove(batch)
            self._received(api, asks, tasks)
            with self._lock:
                self._sending -= 1
                self._lock.notify_all()
        api.close()

    def _send(self, api: WorkerAPI, batch: List[Dict[str, Any]], asks: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Reports `batch`, retrying until the server answers or the leases have run out; the tasks
        claimed for `asks`. A refused batch is split, so that one bad outcome costs no other. The
        heartbeater renews the batch's leases meanwhile, so they run out only a lease after the
        last heartbeat that came through (or, in a drain, at its deadline)."""
        backoff = 0.1
        # A server that keeps refusing a batch while heartbeats go through (a 500 on one outcome, a
        # proxy's 502 on a large body) must not stall the worker for good: three leases at least
        # a minute, then the batch is given up (its leases, no longer renewed, then expire).
        give_up_at = time.monotonic() + max(60.0, 3 * self._lease)
        while True:
            try:
                answer = api.outcomes(batch, asks)
                break
            except SluiceError as error:
                if 400 <= error.status < 500:
                    return self._refused(api, batch, asks, error)
                # Until the lease expires an outcome is still ours to report: never drop it for a network hiccup.
                now = time.monotonic()
                reason = ("their leases ran out" if now >= self._last_beat + self._lease
                          else "the drain's time is over" if self._flush_deadline is not None and now >= self._flush_deadline
                          else "the server refused them for too long" if now >= give_up_at else None)
                if reason is not None:
                    log.error("giving up on %d outcome(s): %s (the tasks will run again): %s", len(batch), reason, error)
                    return []
                log.warning("reporting %d outcome(s) failed (trying again in %g s): %s", len(batch), backoff, error)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as error:  # e.g. a body that cannot be encoded: refused here rather than there
                return self._refused(api, batch, asks, error)
        for entry in answer["outcomes"]:
            if "error" in entry:
                log.warning("task %s: outcome not recorded: %s", entry.get("id"), entry["error"].get("message"))
        return cast(List[Dict[str, Any]], answer.get("tasks", []))

    def _refused(self, api: WorkerAPI, batch: List[Dict[str, Any]], asks: List[Dict[str, Any]], error: Exception) -> List[Dict[str, Any]]:
        """Reports a refused batch in halves; a single refused outcome becomes a plain failure that
        says why (once), so that its task fails now instead of waiting for its lease to run out."""
        if len(batch) > 1:
            half = len(batch) // 2
            return self._send(api, batch[:half], asks) + self._send(api, batch[half:], [])
        outcome = batch[0]
        plain = _lease(outcome)
        # Not retried: the function ran, and would most likely answer the same again (a result
        # larger than the server's --max-body); running it max_attempts times helps no one.
        plain["error"] = _clip(f"the worker's outcome was refused: {error}")
        plain["retry"] = False
        if outcome == plain:
            log.error("the server refused the outcome of task %s: %s", outcome.get("id"), error)
            return []
        log.warning("the server refused the outcome of task %s; reporting it failed instead: %s", outcome.get("id"), error)
        return self._send(api, [plain], asks)

    # The heartbeater

    def _heartbeater(self) -> None:
        api = WorkerAPI(self.url, self.token, self.id)
        while not self._finished.wait(self._heartbeat_interval):
            self._expire_overdue()
            with self._lock:
                held = [item for item in self._held.values() if not item.settled]
                # Outcomes not yet taken by the server keep their leases too ("claimed and not yet
                # reported"): a slow or failing report must not let them expire and run again.
                ids = {item.context.id for item in held}
                pending = self._outbox + [outcome for batch in self._in_flight for outcome in batch]
                reporting = [_renewal(outcome) for outcome in pending if outcome["id"] not in ids]
            beat_at = time.monotonic()
            try:
                # Split over several calls when there are many (a large --prefetch): see WorkerAPI.heartbeat.
                answer = api.heartbeat(self._description(), [item.renewal for item in held] + reporting)
                if not isinstance(answer, dict):
                    raise ValueError(f"the heartbeat's answer is not a JSON object: {answer!r:.200}")
                statuses = {entry["id"]: entry["status"] for entry in answer.get("leases", [])}
            except Exception as error:  # whatever it is, the next beat tries again: leases must keep renewing
                log.warning("heartbeat failed: %s", error)
                continue
            with self._lock:
                self._last_beat = beat_at
                for item in held:
                    status = statuses.get(item.context.id, "lost")
                    if status == "held" or item.settled:
                        continue
                    item.context.cancelled.set()
                    self._cancel_async(item)
                    if status == "lost":
                        log.warning("task %s: lease lost (expired or finished elsewhere); its outcome will be dropped", item.context.id)
                        self._settle(item)
                    elif item.started_at is None and item.pool.withdraw(item):
                        # Cancelled while it waited for a slot (prefetched): reported so now, not
                        # when a slot frees.
                        self._settle(item)
                        self._outbox.append(dict(item.lease, error="cancelled before it started", cancel=True))
                self._lock.notify_all()
            try:
                self._apply_settings(answer.get("pools") or [])
            except Exception as error:
                log.warning("could not apply the heartbeat's pool settings: %s", error)
        api.close()

    def _expire_overdue(self) -> None:
        """Fails tasks past their deadline; a plain function keeps its slot (stuck) until it returns."""
        now = time.monotonic()
        with self._lock:
            for item in list(self._held.values()):
                if item.settled or item.started_at is None or now < item.started_at + item.context.timeout:
                    continue
                item.context.cancelled.set()
                self._settle(item)
                # Counted now: the function's return, if ever, is no longer this worker's to report.
                item.pool.count(now - item.started_at, failed=True)
                self._outbox.append(dict(item.lease, error=f"timed out after {item.context.timeout:g} s"))
                if item.aio_task is not None:
                    self._cancel_async(item)
                else:
                    item.stuck = True
                    item.pool.mark_stuck()
            self._lock.notify_all()

    def _apply_settings(self, settings: List[Dict[str, Any]]) -> None:
        """Applies an operator's newest change to each pool once, as `sluice worker` does."""
        with self._lock:
            for setting in settings:
                pool = self._pools.get(setting.get("name", ""))
                stamp = setting.get("updated_at", "")
                if pool is None or self._applied.get(pool.name) == stamp:
                    continue
                self._applied[pool.name] = stamp
                size = setting.get("concurrency") or pool.target
                bounds = setting.get("autoscale")
                if bounds:
                    size = max(bounds["min"], min(bounds["max"], size))
                log.info("pool %s: concurrency %d → %d by an operator's change of %s", pool.name, pool.target, size, stamp)
                pool.resize(size)

    # The event loop for async functions

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_forever()
        self._loop_thread = threading.Thread(target=serve, name="sluice-asyncio", daemon=True)
        self._loop_thread.start()


def _is_async(function: Callable[..., Any]) -> bool:
    """Whether `function` itself is an `async def`. A plain wrapper around one (a decorator) is
    not: it runs on a pool thread, as it may block or run the coroutine itself, and a coroutine it
    returns is awaited on the event loop (`_await_on_loop`)."""
    return inspect.iscoroutinefunction(function)


def duplicate_pool(specs: Sequence[PoolSpec]) -> Optional[str]:
    """The first pool name given twice in `specs`, if any."""
    seen: Set[str] = set()
    for spec in specs:
        if spec.name in seen:
            return spec.name
        seen.add(spec.name)
    return None


def _lease(entry: Dict[str, Any]) -> Dict[str, Any]:
    """The lease an answer's task or an outcome names: what a release or an outcome sends."""
    return {key: entry[key] for key in ("id", "token", "attempt")}


def _renewal(entry: Dict[str, Any]) -> Dict[str, Any]:
    """The lease an outcome names, as a heartbeat renews it (no attempt: the server needs none)."""
    return {"id": entry["id"], "token": entry["token"]}


def _release(api: WorkerAPI, leases: List[Dict[str, Any]], what: str = "unstarted") -> None:
    """Hands tasks back, trying again for up to 10 s when the server cannot take them now (a 503,
    no answer): a task not handed back waits out its lease, and that costs it an attempt. `what`
    says which they are in the log: `unstarted`, or `running` at the end of the grace period."""
    give_up_at = time.monotonic() + 10
    backoff = 0.1
    while True:
        try:
            api.release(leases)
            log.info("handed back %d %s task(s)", len(leases), what)
            return
        except SluiceError as error:
            if 400 <= error.status < 500 or time.monotonic() + backoff > give_up_at:
                log.warning("could not hand back %d task(s) (they return when their leases expire): %s", len(leases), error)
                return
            log.warning("handing back %d task(s) failed (trying again in %g s): %s", len(leases), backoff, error)
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


def _clip(text: str) -> str:
    """An error text no longer than the server keeps, so that a long traceback cannot make a batch too large."""
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 20] + " … (cut)"


def _seconds(after: Any) -> Optional[float]:
    """`Retry(after=…)` as seconds the server accepts: a number (or timedelta) from 0 to 366 days."""
    if hasattr(after, "total_seconds"):
        after = after.total_seconds()
    if isinstance(after, bool) or not isinstance(after, (int, float)):
        return None
    return float(after) if math.isfinite(after) and 0 <= after <= MAX_RETRY_AFTER else None
