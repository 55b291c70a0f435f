"""What a running task function can learn about its task: `sluice.current_task()`."""
from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Optional


@dataclass
class TaskContext:
    """The task a function runs for: its id, attempt and args, and whether a cancel was asked for."""

    id: str
    kind: str
    queue: str
    pool: str
    attempt: int
    max_attempts: int
    args: Dict[str, Any]
    timeout: float
    #: Set when someone cancels the task (seen through the worker's heartbeat, within a second) or
    #: the worker lost its lease: a long function should check it and stop.
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def cancel_requested(self) -> bool:
        return self.cancelled.is_set()


_current: "contextvars.ContextVar[Optional[TaskContext]]" = contextvars.ContextVar("sluice_task", default=None)


def current_task() -> TaskContext:
    """The task the calling function runs for; only inside a task function."""
    task = _current.get()
    if task is None:
        raise RuntimeError("current_task() is only available inside a function a Sluice worker runs")
    return task
