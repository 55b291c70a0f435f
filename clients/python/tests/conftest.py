"""Fixtures: the real `sluice serve` binary on a free loopback port with a temporary database, a
client of it, and Python workers as real processes (`sluice-worker tasks_app:worker`)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, List

import httpx
import pytest

from sluice import Client
from support import Server, WorkerProcess, until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.fixture
def start_worker(server: Server, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: List[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        worker = WorkerProcess(server.url, *args, log=tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        # Ready when the server lists it (its kinds are then accepted by enqueues).
        until(lambda: any(w["pid"] == worker.process.pid for w in httpx.get(server.url + "/v1/workers").json()["workers"]),
              10, f"worker {len(started)} registered")
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


