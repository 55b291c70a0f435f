"""A task as the API answers it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class AttemptError:
    """The error of one failed attempt."""

    attempt: int
    message: str
    at: str


@dataclass(frozen=True)
class Task:
    """A task: what to run, where it is in its life, and what came of it."""

    id: str
    kind: str
    queue: str
    state: str
    attempt: int
    max_attempts: int
    args: Dict[str, Any]
    result: Any = None
    error: Optional[str] = None
    attempt_errors: List[AttemptError] = field(default_factory=list)
    priority: int = 0
    durable: bool = True
    worker: Optional[str] = None
    cancel_requested: bool = False
    created_at: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None

    @property
    def done(self) -> bool:
        """Whether the task reached a final state (succeeded, failed or cancelled)."""
        return self.state in FINAL_STATES

    @classmethod
    def from_json(cls, body: Dict[str, Any]) -> "Task":
        return cls(
            id=body["id"], kind=body["kind"], queue=body["queue"], state=body["state"],
            attempt=body.get("attempt", 0), max_attempts=body.get("max_attempts", 1), args=body.get("args") or {},
            result=body.get("result"), error=body.get("error"),
            attempt_errors=[AttemptError(e["attempt"], e["message"], e["at"]) for e in body.get("attempt_errors") or []],
            priority=body.get("priority", 0), durable=body.get("durable", True), worker=body.get("worker"),
            cancel_requested=body.get("cancel_requested", False), created_at=body.get("created_at"),
            started_at=body.get("started_at"), finished_at=body.get("finished_at"),
        )
