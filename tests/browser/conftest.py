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


def chromium(width=1280, height=1000, prefs=None, phone=False):
    """Headless Chromium at a window of `width`×`height`, with Chromium preferences `prefs`; with
    `phone`, a phone's viewport of that size (headless windows are at least 500 px wide)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}"]:
        options.add_argument(argument)
    if prefs:
        options.add_experimental_option("prefs", prefs)
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 3.0,
                                                                              "touch": True, "mobile": True}})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(0)
    return driver


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def phone():
    """A phone-width window: 390×844 CSS pixels, an iPhone 12 to 15's."""
    driver = chromium(390, 844, phone=True)
    yield driver
    driver.quit()


@pytest.fixture
def no_js_browser():
    """A browser with JavaScript off, as a user or a policy may set it."""
    driver = chromium(prefs={"profile.managed_default_content_settings.javascript": 2})
    yield driver
    driver.quit()


def wait(driver, seconds=15):
    """A wait that looks again rather than fail: the live refresh swaps the page's live part every
    2 s, and a click that submits a form returns before the next page is there."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    class LookingAgain(WebDriverWait):
        def until(self, method, message=""):
            # chromedriver sometimes reports a stale element, read while the page was being
            # replaced, as this inspector error instead of StaleElementReferenceException.
            def looking(d):
                try:
                    return method(d)
                except WebDriverException as error:
                    if "does not belong to the document" in (error.msg or ""):
                        return False
                    raise
            return super().until(looking, message)

    return LookingAgain(driver, seconds, poll_frequency=0.1,
                        ignored_exceptions=[NoSuchElementException, StaleElementReferenceException])


def console_errors(driver):
    """Errors the page logged to the browser console (failed loads, script errors, CSP refusals)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def fill(server):
    """Puts something on every page, long names and unbroken text included (what overflows a
    narrow screen), and returns the pages as (name, path, title, a selector for its main content)."""
    server.enqueue("echo", {"customer": 42}, wait=10)
    failed = server.enqueue("fail", {"message": "export failed: https://reports.example.com/v1/customers/42/invoices/2026-11?format=pdf",
                                     "times": 5}, wait=10, max_attempts=1)
    # No pool drains this queue: its task stays queued.
    server.enqueue("echo", {"note": "n" * 300}, queue="customer-invoices-monthly-export")
    status, _ = server.request("POST", "/v1/schedules", {
        "name": "nightly-invoice-export", "cron": "30 2 * * MON-FRI", "timezone": "America/Argentina/Buenos_Aires",
        "task": {"kind": "echo", "queue": "customer-invoices-monthly-export"}, "misfire": "latest", "overlap": False})
    assert status == 201
    assert server.request("POST", "/v1/schedules", {"name": "heartbeat", "cron": "@every 1s", "task": {"kind": "echo"}})[0] == 201
    # The leader's scheduler fires it within a second or two; then it is disabled, a last task kept.
    deadline = time.time() + 20
    while server.request("GET", "/v1/schedules/heartbeat")[1]["last_task"] is None:
        assert time.time() < deadline, "the heartbeat schedule never fired"
        time.sleep(0.2)
    assert server.request("PATCH", "/v1/schedules/heartbeat", {"enabled": False})[0] == 200
    return [("overview", "/ui/", "Overview", "figure.chart"),
            ("queues", "/ui/queues", "Queues", 'tr[data-queue="customer-invoices-monthly-export"]'),
            ("pools", "/ui/pools", "Pools", '[data-pool="default"] input[name="concurrency"]'),
            ("tasks", "/ui/tasks", "Tasks", f'table.tasks tr[data-task="{failed["id"]}"]'),
            ("task", f"/ui/tasks/{failed['id']}", "Task", ".task-state"),
            ("workers", "/ui/workers", "Workers", "section.card table tbody tr"),
            ("schedules", "/ui/schedules", "Schedules", 'tr[data-schedule="nightly-invoice-export"]')]
