"""Sluice for Python: enqueue tasks (`Client`, `AsyncClient`) and run them in pools of Python
workers (`Worker`) whose size shows in `GET /v1/pools` and changes with `PATCH /v1/pools/NAME`."""
from .client import AsyncClient, Client
from .context import TaskContext, current_task
from .errors import Discard, Retry, SluiceError, TaskFailed, TaskTimeout
from .pool import PoolSpec
from .task import AttemptError, Task
from .worker import Worker

__all__ = ["AsyncClient", "AttemptError", "Client", "Discard", "PoolSpec", "Retry", "SluiceError", "Task",
           "TaskContext", "TaskFailed", "TaskTimeout", "Worker", "current_task"]
__version__ = "0.1.0"
