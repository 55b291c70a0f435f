"""Fixtures for the console's browser tests: the real `sluice serve` on a loopback port with a
temporary database, and headless Chromium driven by Selenium.

Run them with tools/browser-tests. Missing Chromium, chromedriver or Selenium skips the tests,
loudly; with CI=true it fails instead, so a CI run cannot pass without having run them."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _missing():
    """What the tests need and this machine lacks, in words; empty when nothing is missing."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install selenium)")
    if not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")):
        missing.append("chromium (apt-get install chromium)")
    if not (shutil.which("chromedriver") or os.path.exists("/usr/bin/chromedriver")):
        missing.append("chromedriver (apt-get install chromium-driver)")
    return missing


def pytest_collection_modifyitems(config, items):
    missing = _missing()
    if not missing:
        return
    message = "browser tests need " + ", ".join(missing)
    if os.environ.get("CI") == "true":
        raise pytest.UsageError("CI=true and " + message)
    sys.stderr.write("\n*** SKIPPED: " + message + " ***\n\n")
    for item in items:
        item.add_marker(pytest.mark.skip(reason="SKIPPED: " + message))


def sluice_binary():
    path = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, ".build", "debug", "sluice")
    if not os.path.exists(path):
        pytest.fail(f"no sluice binary at {path}: build it with `swift build --product sluice` or set SLUICE_BIN")
    return path


class Server:
    """A running `sluice serve`, its base URL and token; `request` calls its API."""

    def __init__(self, directory, token=None, extra=()):
        self.directory = directory
        self.token = token
        self.extra = list(extra)
        self.port = 0
        self.process = None
        self.start()

    def start(self):
        args = [sluice_binary(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--db", os.path.join(self.directory, "console.db"), "--concurrency", "2"] + self.extra
        if self.token:
            args += ["--token", self.token]
        self.log = open(os.path.join(self.directory, "server.log"), "ab")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, cwd=self.directory)
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.process.stdout.readline().decode()
            if "listening on http://" in line:
                self.port = int(line.split("listening on http://127.0.0.1:")[1].split()[0])
                self.url = f"http://127.0.0.1:{self.port}"
                return
            if self.process.poll() is not None:
                break
        raise RuntimeError("sluice serve did not start; see " + os.path.join(self.directory, "server.log"))

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def restart(self):
        """Stops and starts again on the same port and database."""
        self.stop()
        self.start()

    def request(self, method, path, body=None, token=True):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token and token:
            request.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def enqueue(self, kind, args=None, wait=None, **fields):
        body = {"kind": kind, "args": args or {}, **fields}
        status, task = self.request("POST", "/v1/tasks" + (f"?wait={wait}" if wait else ""), body)
        assert status in (200, 202), task
        return task

    def wait_for(self, task_id, seconds=10):
        return self.request("GET", f"/v1/tasks/{task_id}?wait={seconds}")[1]


@pytest.fixture
def make_server(tmp_path):
    servers = []

    def make(**kwargs):
        server = Server(str(tmp_path), **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def console_errors(driver):
    """Errors the page logged to the browser console (failed loads, script errors, CSP refusals)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
