"""A pool of the Python worker: a concurrency that an operator can change while it runs, threads
for plain functions (started as tasks arrive, never more than the concurrency, and ended when the
pool shrinks) and slots shared with `async def` functions, which run on the worker's event loop."""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class PoolSpec:
    """A pool to run: its name, the queues it drains (earlier first) and its concurrency."""

    name: str
    queues: List[str]
    concurrency: int

    @classmethod
    def parse(cls, text: str) -> "PoolSpec":
        """`NAME=QUEUE[,QUEUE…][:N]`, as `sluice worker --pool` reads it (N defaults to 10). N follows
        the last colon, since a queue name may hold one: `jobs=mail:high:5`."""
        name, sep, rest = text.partition("=")
        queues, colon, number = rest.rpartition(":")
        if not colon:
            queues = rest
        try:
            concurrency = int(number) if colon else 10
        except ValueError:
            concurrency = 0
        names = [q.strip() for q in queues.split(",") if q.strip()]
        if not sep or not name or not names or not 1 <= concurrency <= 10_000:
            raise ValueError(f"--pool {text}: expected NAME=QUEUE[,QUEUE…][:CONCURRENCY] with CONCURRENCY from 1 to 10000, e.g. images=images,bulk:20")
        return cls(name, names, concurrency)


class Pool:
    """Slots and threads of one pool. `lock` is the worker's: the claimer waits on it for a free slot.
    The pool's threads wait on a condition of their own over the same mutex, so that a task ending
    wakes the claimer and the completer, not every idle thread of every pool."""

    def __init__(self, spec: PoolSpec, lock: threading.Condition, mutex: threading.RLock, run: Callable[[Any], None],
                 start_async: Callable[[Any], None], prefetch: int = 0) -> None:
        self.name = spec.name
        self.queues = list(spec.queues)
        self.target = spec.concurrency
        #: Claimed tasks the pool may hold beyond its slots, waiting for a thread.
        self.prefetch = prefetch
        self._lock = lock
        self._work = threading.Condition(mutex)
        self._run = run
        self._start_async = start_async
        #: Plain tasks waiting for a thread and a slot, as (claim order, item).
        self._inbox: Deque[Tuple[int, Any]] = collections.deque()
        #: `async def` tasks claimed (prefetched) while every slot was taken, in claim order.
        self._async_waiting: Deque[Tuple[int, Any]] = collections.deque()
        #: Claim order across both kinds: a freed slot goes to the task claimed first, so that a
        #: stream of async tasks cannot hold plain ones back for good (or the other way round).
        self._order = 0
        self.busy = 0
        self.stuck = 0
        #: Slots asked for by a claim or refill still in flight: not free, or two would ask for them.
        self.reserved = 0
        self.threads = 0
        self.processed = 0
        self.failed = 0
        self._run_times: Deque[float] = collections.deque(maxlen=1000)
        self.high_water = 0
        #: Threads running a task (stuck ones too): the others are idle.
        self._working = 0

    # All methods below are called with the worker's lock held, except `_thread`.

    @property
    def free(self) -> int:
        """Tasks to claim now: concurrency + prefetch − running − stuck − claimed but not started − asked for."""
        return max(0, self.target + self.prefetch - self.busy - self.stuck - self._unstarted - self.reserved)

    @property
    def _unstarted(self) -> int:
        return len(self._inbox) + len(self._async_waiting)

    def submit_sync(self, item: Any) -> None:
        """Queues a plain function's task and starts a thread for it when none is idle."""
        self._order += 1
        self._inbox.append((self._order, item))
        self._start_threads()
        self._work.notify()

    def _start_threads(self) -> None:
        """A thread for each queued plain task no idle thread will take, within the concurrency.
        Threads count apart from slots: an `async def` task holds a slot and no thread."""
        while self.threads - self._working < len(self._inbox) and self.threads - self.stuck < self.target:
            self.threads += 1
            threading.Thread(target=self._thread, name=f"sluice-{self.name}-{self.threads}", daemon=True).start()

    @property
    def _slot_free(self) -> bool:
        return self.busy + self.stuck < self.target

    def submit_async(self, item: Any) -> None:
        """Starts an `async def` task now if a slot is free, else when one frees (prefetch)."""
        self._order += 1
        if self._slot_free and not self._inbox:
            self._start(item)
        else:
            self._async_waiting.append((self._order, item))

    def _start(self, item: Any) -> None:
        self.busy += 1
        self.high_water = max(self.high_water, self.busy)
        self._start_async(item)

    def finished(self, seconds: Optional[float], failed: bool, was_stuck: bool = False) -> None:
        """A task left its slot (`seconds` is None when its outcome was not ours to report)."""
        if was_stuck:
            self.stuck -= 1
        else:
            self.busy -= 1
        if seconds is not None:
            self.count(seconds, failed)
        self._fill_slots()
        self._lock.notify_all()

    def count(self, seconds: float, failed: bool) -> None:
        """Counts an attempt this worker reported in `processed` (and `failed`): when its function
        returned, or at its deadline for one that timed out (whose return, if ever, is not counted)."""
        self.processed += 1
        self.failed += int(failed)
        self._run_times.append(seconds)

    @property
    def _plain_next(self) -> bool:
        """Whether the next free slot is a queued plain task's (claimed before any waiting async one)."""
        return bool(self._inbox) and (not self._async_waiting or self._inbox[0][0] < self._async_waiting[0][0])

    def _fill_slots(self) -> None:
        """Gives free slots to waiting tasks in claim order: async ones start here, plain ones are
        taken by a thread (started or woken)."""
        while self._slot_free and self._async_waiting and not self._plain_next:
            self._start(self._async_waiting.popleft()[1])
        if self._slot_free and self._plain_next:
            self._start_threads()
            self._work.notify()

    def mark_stuck(self) -> None:
        """A plain function ran past its task's deadline: its slot stays taken until it returns."""
        self.busy -= 1
        self.stuck += 1

    def withdraw(self, item: Any) -> bool:
        """Takes a claimed task that has not started out of the pool (a cancel); whether it was there."""
        for waiting in (self._inbox, self._async_waiting):
            for entry in waiting:
                if entry[1] is item:
                    waiting.remove(entry)
                    self._fill_slots()
                    self._lock.notify_all()  # a slot the claimer may fill
                    return True
        return False

    def take_unstarted(self) -> List[Any]:
        """Empties the inbox (on shutdown, to hand the tasks back)."""
        items = [item for _, item in sorted(list(self._inbox) + list(self._async_waiting), key=lambda entry: entry[0])]
        self._inbox.clear()
        self._async_waiting.clear()
        return items

    def resize(self, concurrency: int) -> None:
        self.target = concurrency
        # Prefetched tasks start in the new slots at once, not when the next claim brings more.
        self._fill_slots()
        self._start_threads()
        # Idle threads beyond the new size see it and end; more start as tasks arrive, which the
        # claimer now asks for.
        self._work.notify_all()
        self._lock.notify_all()

    def figures(self) -> Dict[str, Any]:
        times = sorted(self._run_times)

        def percentile(p: float) -> Optional[float]:
            return times[min(len(times) - 1, int(p * len(times)))] if times else None

        return {"name": self.name, "queues": self.queues, "concurrency": self.target, "threads": self.threads,
                "busy": self.busy, "idle": max(0, self.threads - self.busy - self.stuck), "stuck": self.stuck,
                # Slots a long poll has asked for are still free capacity: an idle pool shows them free.
                "free": max(0, self.target - self.busy - self.stuck - self._unstarted), "processed": self.processed, "failed": self.failed,
                "run_time_p50": percentile(0.5), "run_time_p99": percentile(0.99)}

    def _thread(self) -> None:
        while True:
            with self._lock:
                # A task is taken only into a free slot: `async def` tasks hold slots too, so a
                # queued plain task may wait for one with a thread idle.
                idle_until = time.monotonic() + 5.0
                while self.threads - self.stuck <= self.target and not (self._plain_next and self._slot_free):
                    left = idle_until - time.monotonic()
                    if left <= 0 and not self._inbox:
                        break
                    self._work.wait(left if left > 0 else 5.0)
                if not (self._plain_next and self._slot_free) or self.threads - self.stuck > self.target:
                    self.threads -= 1  # the pool shrank (or no work came): this thread ends
                    if self._inbox:
                        self._work.notify()  # the wake-up it took was meant for a thread that works
                    self._lock.notify_all()
                    return
                item = self._inbox.popleft()[1]
                self.busy += 1
                self._working += 1
                self.high_water = max(self.high_water, self.busy)
                self._fill_slots()  # an async task claimed next may have a slot too
            try:
                self._run(item)
            finally:
                with self._lock:
                    self._working -= 1
