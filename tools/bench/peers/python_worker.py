"""The Python worker of the python-drain scenario: one no-op task kind, run by
`sluice-worker python_worker:worker --pool py=py:16`."""
from sluice import Worker

worker = Worker()


@worker.task("noop")
def noop() -> None:
    return None
