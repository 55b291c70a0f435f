"""Helpers shared by these tests and the FastAPI example's: the real `sluice serve` binary
(`SLUICE_BIN`, default `.build/debug/sluice` of the repository) on a free loopback port with a
temporary database, and Python workers as real processes (`sluice-worker MODULE:WORKER`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def sluice_binary() -> str:
    """The binary under test: SLUICE_BIN, else the repository's debug build."""
    path = os.environ.get("SLUICE_BIN") or str(REPO / ".build" / "debug" / "sluice")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no sluice binary at {path}: build it (swift build --product sluice) or set SLUICE_BIN", returncode=2)
    return path


class Server:
    """A running `sluice serve`; its URL, and its process for signals."""

    def __init__(self, tmp: Path, *extra: str) -> None:
        # The server's own pool drains a queue of its own: the Python pools get theirs to themselves,
        # and the server process still leads maintenance (it rescues leases of killed workers).
        command = [sluice_binary(), "serve", "--port", "0", "--db", str(tmp / "sluice.db"), "--pool", "swift=swift-only:1",
                   "--lease", "3", *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        self.url = ""
        lines: List[str] = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("sluice: listening on "):
                self.url = line.split("listening on ")[1].split()[0]
                break
        if not self.url:
            self.process.kill()
            raise RuntimeError("sluice serve did not start:\n" + "".join(lines))
        # Keep reading its output so a full pipe never blocks it.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


class WorkerProcess:
    """`sluice-worker tasks_app:worker` as a child process."""

    def __init__(self, url: str, *args: str, log: Optional[Path] = None, target: str = "tasks_app:worker",
                 cwd: Path = HERE, env: Optional[dict] = None) -> None:
        command = [sys.executable, "-m", "sluice.cli", target, "--url", url, *args]
        self.log = log
        output = open(log, "w") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(command, cwd=str(cwd), stdout=output, stderr=subprocess.STDOUT, env=env)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text() if self.log else ""


def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Waits for `condition`, polling; fails the test naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")
