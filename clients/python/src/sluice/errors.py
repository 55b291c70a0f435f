"""Errors the client raises, and the exceptions a task function raises to choose what follows."""
from __future__ import annotations

from typing import Any, Optional


class SluiceError(Exception):
    """An error answer from the server: its HTTP status, code, message and the field it names, and
    for a 503 (`queue_full`, `overloaded`, `storage`) how many seconds to wait before trying again
    (`retry_after`, from the `Retry-After` header)."""

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, status: int, body: Any, fallback: str, retry_after: Optional[str] = None) -> "SluiceError":
        try:
            after = float(retry_after) if retry_after is not None else None
        except ValueError:
            after = None  # an HTTP date: Sluice sends seconds
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(status, str(error.get("code", "error")), str(error.get("message", fallback)), error.get("field"), after)
        return cls(status, "http_error", fallback, retry_after=after)


class TaskFailed(Exception):
    """A task waited for with `Client.result` ended failed or cancelled."""

    def __init__(self, task: Any) -> None:
        super().__init__(f"task {task.id} ({task.kind}) ended {task.state}: {task.error}")
        self.task = task


class TaskTimeout(Exception):
    """A task waited for with `Client.result` was not final within the time given."""

    def __init__(self, task: Any, seconds: float) -> None:
        super().__init__(f"task {task.id} ({task.kind}) is still {task.state} after {seconds:g} s")
        self.task = task


class Retry(Exception):
    """Raised by a task function: fail this attempt and retry after `after` seconds (attempts allowing)."""

    def __init__(self, message: str = "asked to retry", after: Optional[float] = None) -> None:
        super().__init__(message)
        self.after = after


class Discard(Exception):
    """Raised by a task function: fail the task now, without retrying, whatever attempts remain."""
