"""Sluice beside its peers: the driver behind tools/bench/run (run that, not this).

Every scenario starts its own processes on free 127.0.0.1 ports with fresh databases, bounds each
load in count and time, and stops what it started by process group on exit, error or interrupt.
Results go to OUT/bench/results/<scenario>.json; OUT/BENCHMARKS.md and OUT/img/*.png are rendered from
every result file present, so one scenario can be re-run without losing the others.
"""
import argparse
import concurrent.futures
import datetime
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PEERS = os.path.join(ROOT, "tools", "bench", "peers")
SCENARIOS = ["seed", "seed-python", "burst", "enqueue", "drain", "latency", "resources", "health", "scale", "store", "postgres",
             "console", "python-drain"]
FINISHED = "(state = 'succeeded' OR state = 'failed' OR state = 'cancelled')"  # as the partial index tasks_finished has it (migration 6)


@dataclass
class Sizes:
    """Sizes of one mode. full follows the issue; quick fits in 2 minutes; smoke only exercises."""
    seed_n: int = 1000
    seed_sleep: float = 3.0
    seed_pools: tuple = (6, 12, 40, 50, 60, 200)
    burst_tasks: int = 200
    burst_sleep: float = 0.1
    wrk_seconds: int = 10
    huey_enqueue: int = 20_000
    batch_size: int = 100
    drain: int = 100_000
    huey_drain: int = 20_000
    latency_seconds: float = 10.0
    queued: int = 100_000
    busy: int = 1000
    health_seconds: int = 5
    store_scale: float = 1.0
    history: int = 1_000_000  # the scale scenario's file: this many finished tasks and as many scheduled
    reads: int = 2000         # sequential GETs per endpoint in the scale scenario
    pg_tasks: int = 100_000   # the postgres scenario: tasks each drain (Sluice, raw SKIP LOCKED, pgqueuer)
    pg_procrastinate_tasks: int = 3_000  # procrastinate drains ~150-400/s, slower as its queue grows
    pg_latency_tasks: int = 200
    wait_tasks: int = 100     # the latency scenario's enqueue-and-wait round trips, one at a time
    console_tasks: int = 1_000_000  # the console scenario: tasks in the store while its pages are timed
    console_requests: int = 15      # requests per page and per fragment, each repeat
    python_drain: int = 20_000      # no-op tasks the Python worker and Huey's consumer each drain


MODES = {
    "full": Sizes(),
    "seed-short": Sizes(seed_n=500, seed_sleep=0.5),
    "quick": Sizes(seed_n=200, seed_sleep=0.2, seed_pools=(6, 12, 50, 200), wrk_seconds=3, huey_enqueue=2000,
                   drain=10_000, huey_drain=2000, latency_seconds=2.0, queued=10_000, health_seconds=2,
                   store_scale=0.05, history=100_000, reads=1000, pg_tasks=10_000, pg_procrastinate_tasks=1000,
                   pg_latency_tasks=50, wait_tasks=30, console_tasks=100_000, console_requests=5, python_drain=5000),
    "smoke": Sizes(seed_n=50, seed_sleep=0.02, seed_pools=(6, 50), burst_tasks=20, burst_sleep=0.05, wrk_seconds=1,
                   huey_enqueue=100, batch_size=10, drain=500, huey_drain=100, latency_seconds=0.3, queued=1000,
                   busy=50, health_seconds=1, store_scale=0.02, history=2000, reads=100, pg_tasks=500,
                   pg_procrastinate_tasks=50, pg_latency_tasks=10, wait_tasks=5, console_tasks=3000, console_requests=2, python_drain=200),
}


# ---------------------------------------------------------------- processes

class Processes:
    """Everything this run started, each in its own process group, so that stop() takes children too."""

    def __init__(self, logdir):
        self.live = []
        self.logdir = logdir
        self.started = 0  # numbers the logs, so a later process never overwrites an earlier one's

    def start(self, name, argv, env=None, cwd=PEERS):
        self.started += 1
        log = open(os.path.join(self.logdir, f"{name}-{self.started}.log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env={**os.environ, **(env or {})}, start_new_session=True, cwd=cwd)
        p.name, p.log = name, log.name
        self.live.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=30):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            except ProcessLookupError:
                pass
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, timeout=5)

    def tail(self, p):
        with open(p.log, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(procs, p, port, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"{p.name} exited with {p.returncode}:\n{procs.tail(p)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{p.name} did not listen on {port} within {seconds} s:\n{procs.tail(p)}")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def cursor_at(ms):
    """The greatest task id (a ULID) of millisecond ms: a list cursor that starts at that moment."""
    return "".join(CROCKFORD[(ms >> (5 * i)) & 31] for i in range(9, -1, -1)) + "Z" * 16


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------- numbers

def console_bytes(bin_dir):
    """Text and data of the console's object files (Console/*.swift, a file per page) in a SwiftPM build
    directory, by `size`; None when the objects are not there (a bare sluice binary was given)."""
    objects = os.path.join(bin_dir, "SluiceHTTP.build")
    names = [n for n in os.listdir(os.path.join(ROOT, "Sources", "SluiceHTTP", "Console")) if n.endswith(".swift")]
    paths = [os.path.join(objects, n + ".o") for n in names]
    if not os.path.isdir(objects) or not all(os.path.exists(p) for p in paths):
        return None
    out = subprocess.run(["size", *paths], capture_output=True, text=True, check=True).stdout.splitlines()[1:]
    return sum(int(line.split()[3]) for line in out)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summary(xs, fmt="{:.2f}"):
    """Median with (min–max), the form every table uses."""
    if not xs:
        return "–"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def percentile(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


def verdict(met, miss_by=None):
    return "**met**" if met else f"**missed**{f' by {miss_by}' if miss_by else ''}"


# ---------------------------------------------------------------- load generators

def run_ab(url, n, c, body=None, timeout=900):
    argv = ["ab", "-q", "-n", str(n), "-c", str(c), "-s", "300"]
    if body is not None:
        argv += ["-p", body, "-T", "application/json"]
    done = subprocess.run(argv + [url], capture_output=True, text=True, timeout=timeout)
    out = done.stdout + done.stderr
    def num(label, default=None):
        m = re.search(rf"^{label}:\s+([\d.]+)", out, re.M)
        if m is None and default is None:
            raise SystemExit(f"ab gave no '{label}' for {url}:\n{out[-1500:]}")
        return float(m.group(1)) if m else default
    return {"seconds": num("Time taken for tests"), "rps": num("Requests per second"),
            "complete": int(num("Complete requests")),
            "failed": int(num("Failed requests", 0) + num("Non-2xx responses", 0))}


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url, seconds, connections, body=None, latency=False, lua_dir="/tmp"):
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s"]
    env = dict(os.environ)
    if body is not None:
        script = os.path.join(lua_dir, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = os.getenv("BODY")\n')
        argv += ["-s", script]
        env["BODY"] = body
    if latency:
        argv.append("--latency")
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=seconds + 60, env=env).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise SystemExit(f"wrk gave no rate for {url}:\n{out[-1500:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result = {"rps": float(m.group(1)), "non2xx": int(bad.group(1)) if bad else 0,
              "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    if latency:
        for p in ("50", "99"):
            result[f"p{p}_ms"] = to_ms(re.search(rf"^\s+{p}(?:\.000)?%\s+(\S+)", out, re.M).group(1))
    return result


# ---------------------------------------------------------------- Sluice

def wait_round_trips(client, count):
    """Milliseconds of `count` enqueue-and-wait requests (`POST /v1/tasks?wait=10` of an `echo`), one
    at a time with idle gaps of 50 to 130 ms: what a caller that wants the result waits."""
    times = []
    for i in range(count):
        time.sleep(0.05 + (i % 5) * 0.02)
        start = time.perf_counter()
        task = client.call("POST", "/v1/tasks?wait=10", {"kind": "echo", "args": {"wait": i}})
        times.append((time.perf_counter() - start) * 1000)
        if task["state"] != "succeeded":
            raise SystemExit(f"enqueue-and-wait answered a task {task['state']}: {task}")
    return times


class Client:
    """One keep-alive HTTP connection to a local server."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=330)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = self.conn.getresponse()
        payload = r.read()
        if r.status >= 300:
            raise SystemExit(f"{method} {path} answered {r.status}: {payload[:500]!r}")
        return json.loads(payload) if payload else None

    def close(self):
        self.conn.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.sizes = MODES[args.mode]
        self.repeats = args.repeats
        self.bin = args.bin
        # --bin names the directory of the built products, or the sluice binary itself (the postgres
        # scenario needs only that one).
        self.sluice = args.bin if os.path.isfile(args.bin) else os.path.join(args.bin, "sluice")
        self.work = tempfile.mkdtemp(prefix="sluice-bench.")
        self.procs = Processes(self.work)
        self.dbs = 0

    def fresh_db(self, name="sluice"):
        self.dbs += 1
        return os.path.join(self.work, f"{name}-{self.dbs}.db")

    def serve(self, *flags, db=None):
        port = free_port()
        db = db or self.fresh_db()
        p = self.procs.start("serve", [f"{self.bin}/sluice", "serve", "--port", str(port), "--db", db,
                                       "--log-level", "error", *flags])
        wait_tcp(self.procs, p, port)
        p.port, p.db = port, db
        return p

    def worker(self, db, *flags):
        return self.procs.start("worker", [f"{self.bin}/sluice", "worker", "--db", db, "--log-level", "error", *flags])

    def uvicorn(self, env, app="seed_app:app", cwd=PEERS):
        port = free_port()
        p = self.procs.start("uvicorn", [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                                         "--port", str(port), "--log-level", "warning", "--no-access-log"], env=env, cwd=cwd)
        wait_tcp(self.procs, p, port)
        p.port = port
        return p

    def huey_consumer(self, db, workers):
        # -d/-m: poll every 10 ms and back off to at most 100 ms, well under Huey's defaults
        # (100 ms and 10 s), so that polling costs Huey as little as it can.
        return self.procs.start("huey", [sys.executable, "-m", "huey.bin.huey_consumer", "huey_app.huey", "-k", "thread",
                                         "-w", str(workers), "-d", "0.01", "-m", "0.1", "-C", "-n", "-q"],
                                env={"HUEY_DB": db})

    def huey(self, db):
        return self.peer_module("huey_app", {"HUEY_DB": db})

    def peer_module(self, name, env):
        """A peer's app module from tools/bench/peers, loaded afresh under env (which it reads at import)."""
        import importlib
        os.environ.update(env)
        if PEERS not in sys.path:
            sys.path.insert(0, PEERS)
        return importlib.reload(importlib.import_module(name))

    def query(self, db, sql):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute(sql).fetchall()

    def fill(self, port, count, task, queue=None):
        """Enqueues count copies of task through the batch endpoint, 1,000 at a time."""
        client = Client(port)
        item = dict(task, **({"queue": queue} if queue else {}))
        for start in range(0, count, 1000):
            client.call("POST", "/v1/tasks/batch", [item] * min(1000, count - start))
        client.close()

    # ------------------------------------------------------------ 1. the seed

    def seed(self):
        z = self.sizes
        body = os.path.join(self.work, "sleep.json")
        with open(body, "w") as f:
            json.dump({"kind": "sleep", "args": {"seconds": z.seed_sleep}}, f)
        out = {"n": z.seed_n, "c": 50, "sleep": z.seed_sleep, "sluice": {}, "fastapi": {}}
        for pool in z.seed_pools:
            runs = []
            for _ in range(self.repeats):
                s = self.serve("--concurrency", str(pool))
                runs.append(run_ab(f"http://127.0.0.1:{s.port}/v1/tasks?wait=300", z.seed_n, 50, body=body))
                self.procs.stop(s)
            out["sluice"][str(pool)] = runs
            self.say(f"seed: sluice pool {pool}: {summary([r['seconds'] for r in runs])} s")
        for variant in ("plain", "tuned"):
            out["fastapi"][variant] = {}
            for endpoint in ("sync", "async", "sync_async", "sync_async_fastapi"):
                runs = []
                for _ in range(self.repeats):
                    u = self.uvicorn({"SEED_SLEEP": str(z.seed_sleep), "SEED_TUNED": "1" if variant == "tuned" else "0"})
                    runs.append(run_ab(f"http://127.0.0.1:{u.port}/test/{endpoint}", z.seed_n, 50))
                    self.procs.stop(u)
                out["fastapi"][variant][endpoint] = runs
                self.say(f"seed: fastapi {variant} /test/{endpoint}: {summary([r['seconds'] for r in runs])} s")
        return out

    # ------------------------------------------------------------ 1b. the seed through Python workers

    def seed_python(self):
        """examples/fastapi: the seed's four endpoints each enqueue and await; the blocking call runs
        in a Python worker's pool of 50 (the Python package, clients/python). One server, worker and
        app per repeat, serving the four endpoints in turn; then the seed's own app, unchanged (FastAPI's
        defaults), on the same four, so that both are measured in the same run."""
        z = self.sizes
        example = os.path.join(ROOT, "examples", "fastapi")
        endpoints = ("sync", "async", "sync_async", "sync_async_fastapi")
        out = {"n": z.seed_n, "c": 50, "sleep": z.seed_sleep, "endpoints": {e: [] for e in endpoints},
               "originals": {e: [] for e in endpoints}}
        for _ in range(self.repeats):
            s = self.serve()
            env = {"SEED_SLEEP": str(z.seed_sleep), "SLUICE_URL": f"http://127.0.0.1:{s.port}"}
            w = self.procs.start("python-worker", [sys.executable, "-m", "sluice.cli", "tasks:worker", "--log-level", "warning"],
                                 env=env, cwd=example)
            client, deadline = Client(s.port), time.monotonic() + 30
            while not any(p["name"] == "seed" for p in client.call("GET", "/v1/pools")["pools"]):
                if w.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the Python worker did not register:\n{self.procs.tail(w)}")
                time.sleep(0.05)
            client.close()
            u = self.uvicorn(env, app="app:app", cwd=example)
            for endpoint in endpoints:
                out["endpoints"][endpoint].append(run_ab(f"http://127.0.0.1:{u.port}/test/{endpoint}", z.seed_n, 50))
            for p in (u, w, s):
                self.procs.stop(p)
            for endpoint in endpoints:
                u = self.uvicorn({"SEED_SLEEP": str(z.seed_sleep), "SEED_TUNED": "0"})
                out["originals"][endpoint].append(run_ab(f"http://127.0.0.1:{u.port}/test/{endpoint}", z.seed_n, 50))
                self.procs.stop(u)
        for endpoint, runs in out["endpoints"].items():
            self.say(f"seed-python: /test/{endpoint}: {summary([r['seconds'] for r in runs])} s, "
                     f"the seed's original {summary([r['seconds'] for r in out['originals'][endpoint]])} s")
        return out

    # ------------------------------------------------------------ 11. drain through a Python worker

    PYTHON_THREADS = 16
    # None; Celery's default hold (4 × the threads, running ones included); 16 × the threads.
    PYTHON_PREFETCH = (0, 48, 240)

    def python_drain(self):
        """Issue 13: no-op tasks pre-filled, then drained by one Python worker process (the package's
        `sluice-worker`, 16 threads) without and with prefetch, and by Huey's thread consumer with 16
        threads: tasks/s from spawning the worker to the queue's last task done."""
        z, threads = self.sizes, self.PYTHON_THREADS
        out = {"tasks": z.python_drain, "threads": threads, "sluice": {}, "drained": {}, "huey": [], "huey_drained": []}
        for prefetch in self.PYTHON_PREFETCH:
            runs, drained = [], []
            for _ in range(self.repeats):
                s = self.serve("--no-pool")
                client = Client(s.port)
                # A registration naming the kind, so that the enqueues are accepted before the worker runs.
                client.call("PUT", "/v1/workers/bench-kinds", {"kinds": ["noop"], "pools": []})
                self.fill(s.port, z.python_drain, {"kind": "noop"}, queue="py")
                client.call("DELETE", "/v1/workers/bench-kinds")
                start = time.monotonic()
                w = self.procs.start("python-worker", [sys.executable, "-m", "sluice.cli", "python_worker:worker",
                                                       "--url", f"http://127.0.0.1:{s.port}", "--pool", f"py=py:{threads}",
                                                       "--prefetch", str(prefetch), "--log-level", "warning"], cwd=PEERS)
                while client.call("GET", "/v1/tasks?queue=py&state=queued,running&limit=1")["tasks"]:
                    if w.poll() is not None or time.monotonic() > start + 600:
                        raise SystemExit(f"the Python worker stopped draining:\n{self.procs.tail(w)}")
                    time.sleep(0.01)
                runs.append(z.python_drain / (time.monotonic() - start))
                counts = client.call("GET", "/v1/queues")["durable"]
                drained.append(sum(q["counts"].get("succeeded", 0) for q in counts if q["queue"] == "py"))
                client.close()
                for p in (w, s):
                    self.procs.stop(p)
            out["sluice"][str(prefetch)], out["drained"][str(prefetch)] = runs, drained
            self.say(f"python-drain: sluice-worker {threads} threads, prefetch {prefetch}: {summary(runs, '{:.0f}')} tasks/s")
        for _ in range(self.repeats):
            rate, drained = self.huey_drain_once(z.python_drain, threads)
            out["huey"].append(rate)
            out["huey_drained"].append(drained)
        self.say(f"python-drain: huey -w {threads}: {summary(out['huey'], '{:.0f}')} tasks/s")
        out["celery"], out["celery_drained"] = [], []
        redis_port = free_port()
        redis = self.procs.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no"])
        wait_tcp(self.procs, redis, redis_port)
        for _ in range(self.repeats):
            rate, drained = self.celery_drain_once(z.python_drain, threads, redis_port)
            out["celery"].append(rate)
            out["celery_drained"].append(drained)
        self.procs.stop(redis)
        self.say(f"python-drain: celery --pool threads --concurrency {threads}: {summary(out['celery'], '{:.0f}')} tasks/s")
        return out

    def celery_drain_once(self, count, threads, redis_port):
        """Pre-fills count `echo` tasks into Redis (database 0; results go to database 1, both emptied
        first), then drains them with one Celery worker, `--pool threads --concurrency threads`, at
        Celery's default prefetch (4 a thread): tasks/s from spawning it until every result is
        stored, and how many were."""
        import redis
        env = {"CELERY_BROKER": f"redis://127.0.0.1:{redis_port}/0", "CELERY_RESULTS": f"redis://127.0.0.1:{redis_port}/1"}
        celery_app = self.peer_module("celery_app", env)
        results = redis.Redis(port=redis_port, db=1)
        results.flushall()
        for i in range(count):
            celery_app.echo.delay(i)
        start = time.monotonic()
        worker = self.procs.start("celery", [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "threads",
                                             "--concurrency", str(threads), "--loglevel", "warning", "--without-gossip",
                                             "--without-mingle", "--without-heartbeat"], env=env)
        while results.dbsize() < count:  # one key a stored result
            if time.monotonic() > start + 600 or worker.poll() is not None:
                raise SystemExit(f"celery drain stopped:\n{self.procs.tail(worker)}")
            time.sleep(0.01)
        rate = count / (time.monotonic() - start)
        drained = results.dbsize()
        self.procs.stop(worker)
        celery_app.app.close()
        results.close()
        return rate, drained

    # ------------------------------------------------------------ 2. blocking burst

    def burst(self):
        z = self.sizes
        out = {"tasks": z.burst_tasks, "sleep": z.burst_sleep, "pool": 50, "sluice": [], "sluice_per_task": [], "huey": []}
        s = self.serve("--concurrency", "50")
        self.burst_sluice(s.port, 50, 0.0)  # warm: every thread of the pool has run once
        for _ in range(self.repeats):
            out["sluice"].append(self.burst_sluice(s.port, z.burst_tasks, z.burst_sleep))
            out["sluice_per_task"].append(self.burst_sluice_per_task(s.port, z.burst_tasks, z.burst_sleep))
        self.procs.stop(s)
        db = self.fresh_db("huey")
        huey_app = self.huey(db)
        consumer = self.huey_consumer(db, 50)
        self.burst_huey(huey_app, 50, 0.0)
        for _ in range(self.repeats):
            out["huey"].append(self.burst_huey(huey_app, z.burst_tasks, z.burst_sleep))
        self.procs.stop(consumer)
        self.say(f"burst: sluice {summary(out['sluice'], '{:.3f}')} s, huey {summary(out['huey'], '{:.3f}')} s")
        return out

    @staticmethod
    def burst_batch(count, seconds):
        return [{"kind": "sleep", "args": {"seconds": seconds}}] * count

    def burst_sluice(self, port, count, seconds):
        """Seconds from the batch request to its answer, which `?wait=` holds until every task is final."""
        start = time.monotonic()
        client = Client(port)
        answer = client.call("POST", "/v1/tasks/batch?wait=60", self.burst_batch(count, seconds))
        client.close()
        if [t["state"] for t in answer["tasks"]] != ["succeeded"] * count:
            raise SystemExit(f"burst: not every task succeeded: {[t['state'] for t in answer['tasks']]}")
        return time.monotonic() - start

    def burst_sluice_per_task(self, port, count, seconds):
        """Seconds from the batch request to the last result, waiting on each task from 8 connections."""
        start = time.monotonic()
        client = Client(port)
        ids = [t["id"] for t in client.call("POST", "/v1/tasks/batch", self.burst_batch(count, seconds))["tasks"]]
        client.close()
        def wait(part):
            c = Client(port)
            for task_id in part:
                if c.call("GET", f"/v1/tasks/{task_id}?wait=60")["state"] != "succeeded":
                    raise SystemExit(f"burst task {task_id} did not succeed")
            c.close()
        threads = [threading.Thread(target=wait, args=(ids[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.monotonic() - start

    def burst_huey(self, huey_app, count, seconds):
        """Seconds from the first enqueue to the last stored result, checked every 5 ms."""
        huey = huey_app.huey
        huey.storage.flush_results()
        start = time.monotonic()
        for _ in range(count):
            huey_app.sleep(seconds)
        deadline = start + 120
        while huey.result_count() < count:
            if time.monotonic() > deadline:
                raise SystemExit("huey burst did not finish in 120 s")
            time.sleep(0.005)
        return time.monotonic() - start

    # ------------------------------------------------------------ 3. enqueue throughput

    def enqueue(self):
        z = self.sizes
        echo = json.dumps({"kind": "echo"})
        cases = [
            ("bare", "bare Hummingbird JSON endpoint (the HTTP ceiling)", None, "/v1/tasks", echo, 1),
            ("full", "durable, synchronous=full (`serve --no-pool`)", ("--no-pool",), "/v1/tasks", echo, 1),
            ("normal", "durable, synchronous=normal (`serve --no-pool --sync normal`)", ("--no-pool", "--sync", "normal"), "/v1/tasks", echo, 1),
            ("batch", f"durable batch of {z.batch_size}, synchronous=full", ("--no-pool",), "/v1/tasks/batch",
             json.dumps([{"kind": "echo"}] * z.batch_size), z.batch_size),
            # Every task of the run stays in memory for the hour: the bound is raised past what ten
            # seconds can enqueue, or most answers would be the 503 that the bound gives.
            ("ff_delayed", "fire-and-forget, delayed an hour (enqueue only)", ("--concurrency", "8", "--max-memory-tasks", "5000000"), "/v1/tasks",
             json.dumps({"kind": "echo", "durable": False, "delay": 3600}), 1),
            ("ff", "fire-and-forget, run at once (the pool runs each echo too)", ("--concurrency", "8"), "/v1/tasks",
             json.dumps({"kind": "echo", "durable": False}), 1),
        ]
        out = {"wrk": f"wrk -t2 -c50 -d{z.wrk_seconds}s", "cases": {}, "labels": {}, "huey": []}
        for key, label, flags, path, body, per_request in cases:
            runs = [self.wrk_enqueue(key, flags, path, body, per_request) for _ in range(self.repeats)]
            out["cases"][key], out["labels"][key] = runs, label
            self.say(f"enqueue: {key}: {summary([r['tasks_per_s'] for r in runs], '{:.0f}')} tasks/s")
        for _ in range(self.repeats):
            huey_app = self.huey(self.fresh_db("huey"))
            start = time.monotonic()
            for i in range(z.huey_enqueue):
                huey_app.echo(i)
            out["huey"].append(z.huey_enqueue / (time.monotonic() - start))
        out["huey_count"] = z.huey_enqueue
        self.say(f"enqueue: huey in-process {summary(out['huey'], '{:.0f}')} tasks/s")
        return out

    def wrk_enqueue(self, key, flags, path, body, per_request, db=None, base=0):
        """One wrk run posting body to path: on sluice-bench-bare when flags is None, else on
        `sluice serve FLAGS` over db (fresh when None). With --no-pool it checks afterwards that every
        acknowledged task is in the database, beside the base tasks the file held before."""
        z = self.sizes
        if flags is None:
            port = free_port()
            p = self.procs.start("bare", [f"{self.bin}/sluice-bench-bare", str(port)])
            wait_tcp(self.procs, p, port)
        else:
            p = self.serve(*flags, db=db)
            port = p.port
        r = run_wrk(f"http://127.0.0.1:{port}{path}", z.wrk_seconds, 50, body=body, lua_dir=self.work)
        # Accepted tasks only: a refusal (503) is answered fast and must not pass for an enqueue.
        r["tasks_per_s"] = r["rps"] * (r["requests"] - r["non2xx"]) / max(1, r["requests"]) * per_request
        self.procs.stop(p)
        if flags is not None and "--no-pool" in flags:
            stored = self.query(p.db, "SELECT count(*) FROM tasks")[0][0] - base
            acked = (r["requests"] - r["non2xx"]) * per_request
            if stored < acked:
                raise SystemExit(f"{key}: {acked} enqueues acknowledged but {stored} stored")
            r["stored"] = stored
        return r

    # ------------------------------------------------------------ 4. drain

    def drain(self):
        z = self.sizes
        out = {"tasks": z.drain, "worker_concurrency": 64, "sluice": {}, "drained": {}, "huey_tasks": z.huey_drain, "huey": {},
               "huey_drained": {}}
        for processes in (1, 2):
            runs = [self.drain_once(processes) for _ in range(self.repeats)]
            out["sluice"][str(processes)] = [r["tasks_per_s"] for r in runs]
            out["drained"][str(processes)] = [r["drained"] for r in runs]
            self.say(f"drain: sluice {processes} worker(s): {summary(out['sluice'][str(processes)], '{:.0f}')} tasks/s")
        runs = [self.drain_once(1, prefetch=self.DRAIN_PREFETCH) for _ in range(self.repeats)]
        out["prefetch"], out["prefetched"] = self.DRAIN_PREFETCH, [r["tasks_per_s"] for r in runs]
        out["prefetched_drained"] = [r["drained"] for r in runs]
        self.say(f"drain: sluice 1 worker --prefetch {self.DRAIN_PREFETCH}: {summary(out['prefetched'], '{:.0f}')} tasks/s")
        for workers in (4, 8):
            runs, out["huey_drained"][str(workers)] = [], []
            for _ in range(self.repeats):
                rate, drained = self.huey_drain_once(z.huey_drain, workers)
                runs.append(rate)
                out["huey_drained"][str(workers)].append(drained)
            out["huey"][str(workers)] = runs
            self.say(f"drain: huey -w {workers}: {summary(runs, '{:.0f}')} tasks/s")
        return out

    def huey_drain_once(self, count, workers):
        """Pre-fills count `echo` tasks into a fresh Huey file, then drains them with one thread consumer of
        `workers` threads: tasks/s from spawning it until every result is stored, and how many were."""
        db = self.fresh_db("huey")
        huey_app = self.huey(db)
        for i in range(count):
            huey_app.echo(i)
        start = time.monotonic()
        consumer = self.huey_consumer(db, workers)
        while huey_app.huey.result_count() < count:
            if time.monotonic() > start + 600 or consumer.poll() is not None:
                raise SystemExit(f"huey drain stopped:\n{self.procs.tail(consumer)}")
            time.sleep(0.01)
        rate = count / (time.monotonic() - start)
        drained = huey_app.huey.result_count()
        self.procs.stop(consumer)
        return rate, drained

    # One more 1-worker drain with claims as large as 256 slots would make (as the postgres scenario's).
    DRAIN_PREFETCH = 192

    def drain_once(self, processes, db=None, base=0, prefetch=0):
        """Pre-fills z.drain `echo` tasks into db (fresh when None) through `serve --no-pool`, then drains
        them with `processes` workers: tasks/s from spawning the workers to the last `finished_at`, and
        how many finished (beside the base finished tasks the file held before)."""
        z = self.sizes
        s = self.serve("--no-pool", db=db)
        self.fill(s.port, z.drain, {"kind": "echo"})
        self.procs.stop(s)
        start = time.time()
        workers = [self.worker(s.db, "--concurrency", "64", "--prefetch", str(prefetch)) for _ in range(processes)]
        drained = self.wait_drained(s.db, z.drain, workers, base=base)
        last = self.query(s.db, f"SELECT max(finished_at) FROM tasks WHERE {FINISHED}")[0][0] / 1e6
        for w in workers:
            self.procs.stop(w)
        return {"tasks_per_s": z.drain / (last - start), "drained": drained}

    def wait_drained(self, db, total, procs, seconds=600, base=0):
        """Waits until total tasks more than base are finished and returns how many more are. While
        work is left it polls the partial indexes of queued and running tasks, whose cost follows the
        work left and not the size of the file; it counts the finished tasks only then."""
        deadline = time.monotonic() + seconds
        while True:
            left = self.query(db, "SELECT (SELECT count(*) FROM tasks WHERE state = 'queued') + "
                                  "(SELECT count(*) FROM tasks WHERE state = 'running')")[0][0]
            done = self.query(db, f"SELECT count(*) FROM tasks WHERE {FINISHED}")[0][0] - base if left == 0 else 0
            if done >= total:
                return done
            for p in procs:
                if p.poll() is not None:
                    raise SystemExit(f"{p.name} exited with {p.returncode}:\n{self.procs.tail(p)}")
            if time.monotonic() > deadline:
                raise SystemExit(f"drain did not finish in {seconds} s ({left} queued or running, {done} of {total} finished)")
            time.sleep(0.2)  # the finish time comes from finished_at, not from this poll

    # ------------------------------------------------------------ 5. latency

    def latency(self):
        z = self.sizes
        out = {"rate": 100, "seconds": z.latency_seconds}
        for where in ("in_process", "worker"):
            if where == "in_process":
                s, extra = self.serve("--concurrency", "10"), []
            else:
                s = self.serve("--no-pool")
                extra = [self.worker(s.db, "--concurrency", "10")]
            time.sleep(1)  # the worker has registered and its poll has backed off: lightly loaded
            count = int(z.latency_seconds * 100)
            client = Client(s.port)
            start = time.monotonic()
            for i in range(count):
                client.call("POST", "/v1/tasks", {"kind": "echo", "args": {"n": i}})
                pause = start + (i + 1) / 100 - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            self.wait_drained(s.db, count, extra, seconds=60)
            rows = self.query(s.db, "SELECT started_at - created_at, finished_at - created_at FROM tasks")
            out[where] = {"tasks": len(rows), "start_ms": [r[0] / 1000 for r in rows], "finish_ms": [r[1] / 1000 for r in rows],
                          "wait_ms": wait_round_trips(client, z.wait_tasks)}
            client.close()
            for p in extra + [s]:
                self.procs.stop(p)
            self.say(f"latency: {where}: start p50 {percentile(out[where]['start_ms'], 0.5):.2f} ms")
        return out

    # ------------------------------------------------------------ 6. resources

    def resources(self):
        z = self.sizes
        out = {"queued": z.queued}
        runs = {"serve_idle": [], "worker_idle": [], "serve_queued": [], "worker_queued": []}
        for _ in range(self.repeats):
            s = self.serve()
            time.sleep(2)
            runs["serve_idle"].append(rss_mb(s.pid))
            w = self.worker(s.db)
            time.sleep(2)
            runs["worker_idle"].append(rss_mb(w.pid))
            self.procs.stop(w)
            # Queued on a queue no pool drains, so they stay queued.
            self.fill(s.port, z.queued, {"kind": "echo"}, queue="parked")
            time.sleep(1)
            runs["serve_queued"].append(rss_mb(s.pid))
            w = self.worker(s.db, "--queues", "parked", "--concurrency", "1", "--lease", "600")
            time.sleep(2)
            runs["worker_queued"].append(rss_mb(w.pid))
            self.procs.stop(w)
            self.procs.stop(s)
        out.update(runs)
        self.say(f"resources: idle serve {summary(runs['serve_idle'], '{:.1f}')} MB, worker {summary(runs['worker_idle'], '{:.1f}')} MB")
        return out

    # ------------------------------------------------------------ 7. event-loop health

    def health(self):
        z = self.sizes
        out = {"busy": z.busy, "runs": []}
        for _ in range(self.repeats):
            s = self.serve("--concurrency", str(z.busy))
            self.fill(s.port, z.busy, {"kind": "sleep", "args": {"seconds": z.health_seconds + 30}})
            client = Client(s.port)
            deadline = time.monotonic() + 60
            while (busy := client.call("GET", "/v1/pools")["pools"][0]["busy"]) < z.busy:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {busy} of {z.busy} tasks started in 60 s")
                time.sleep(0.1)
            client.close()
            r = run_wrk(f"http://127.0.0.1:{s.port}/healthz", z.health_seconds, 1, latency=True)
            r.update(busy=busy, rss_mb=rss_mb(s.pid), threads=threads_of(s.pid))
            out["runs"].append(r)
            self.procs.stop(s, sig=signal.SIGKILL)  # the sleeps would hold a graceful stop for its grace period
        self.say(f"health: /healthz p99 {summary([r['p99_ms'] for r in out['runs']])} ms with {z.busy} busy")
        return out

    # ------------------------------------------------------------ 8. scale

    def scale(self):
        """The server's reads, durable enqueue and the drain on a file with a long history, beside the
        same on an empty file, alternating within each repeat so that both see the same noise."""
        z = self.sizes
        template, window, seconds = self.populate(z.history, z.history)
        out = {"finished": z.history, "scheduled": z.history, "populate_seconds": seconds, "reads": z.reads,
               "wrk": f"wrk -t2 -c50 -d{z.wrk_seconds}s", "drain_tasks": z.drain, "worker_concurrency": 64,
               "empty": {"reads": [], "enqueue": [], "drain": []}, "populated": {"reads": [], "enqueue": [], "drain": []}}
        echo = json.dumps({"kind": "echo"})
        for _ in range(self.repeats):
            for name in ("empty", "populated"):
                r, finished = out[name], z.history if name == "populated" else 0
                # Each measurement on its own copy, so that none sees another's tasks.
                db = self.copy_db(template) if finished else None
                r["reads"].append(self.scale_reads(db, window if finished else None))
                self.discard(db)
                db = self.copy_db(template) if finished else None
                r["enqueue"].append(self.wrk_enqueue(f"scale {name}", ("--no-pool",), "/v1/tasks", echo, 1, db=db, base=2 * finished))
                self.discard(db)
                db = self.copy_db(template) if finished else None
                r["drain"].append(self.drain_once(1, db=db, base=finished))
                self.discard(db)
                self.say(f"scale: {name}: task p99 {r['reads'][-1]['task']['p99_ms']:.2f} ms, queues p99 "
                         f"{r['reads'][-1]['queues']['p99_ms']:.2f} ms, enqueue {r['enqueue'][-1]['tasks_per_s']:.0f}/s, "
                         f"drain {r['drain'][-1]['tasks_per_s']:.0f}/s")
        self.discard(template)
        return out

    def populate(self, finished, scheduled):
        """A file with `finished` finished tasks and `scheduled` tasks due in a day, written through the
        store by `sluice-bench-store populate`, once per run: each measurement takes a copy. Two calls,
        so that the finished tasks' ids lie in a known window of milliseconds. Returns the file, that
        window and the seconds it took."""
        db = self.fresh_db("template")
        start = time.monotonic()
        first = now_ms()
        self.bench_store("populate", "--db", db, "--finished", str(finished), "--scheduled", "0", timeout=4 * 3600)
        window = (first, now_ms())
        self.bench_store("populate", "--db", db, "--finished", "0", "--scheduled", str(scheduled), timeout=4 * 3600)
        seconds = time.monotonic() - start
        counts = self.query(db, f"SELECT count(*), (SELECT count(*) FROM tasks WHERE {FINISHED}) FROM tasks")[0]
        if counts != (finished + scheduled, finished):
            raise SystemExit(f"populate made {counts[0]} tasks, {counts[1]} finished; asked for {finished + scheduled}, {finished} finished")
        self.say(f"scale: populated {finished:,} finished and {scheduled:,} scheduled tasks in {seconds:.1f} s")
        return db, window, seconds

    def copy_db(self, template):
        db = self.fresh_db("populated")
        for suffix in ("", "-wal"):
            if os.path.exists(template + suffix):
                shutil.copyfile(template + suffix, db + suffix)
        return db

    def discard(self, db):
        for suffix in ("", "-wal", "-shm"):
            if db and os.path.exists(db + suffix):
                os.remove(db + suffix)

    def scale_reads(self, db, window):
        """p50 and p99 of z.reads sequential GETs each of /healthz, /v1/tasks/{id} and /v1/queues on
        `sluice serve` over db. On an empty file (db None) it first runs z.reads `echo` tasks, so that
        there are finished tasks to read; their window replaces the history's."""
        z = self.sizes
        s = self.serve(db=db)
        if db is None:
            first = now_ms()
            self.fill(s.port, z.reads, {"kind": "echo"})
            self.wait_drained(s.db, z.reads, [s], seconds=120)
            window = (first, now_ms())
        ids = self.finished_ids(s.port, window, z.reads)
        out = {"distinct_ids": len(set(ids))}
        for name, paths in (("healthz", ["/healthz"] * z.reads), ("task", [f"/v1/tasks/{i}" for i in ids]),
                            ("queues", ["/v1/queues"] * z.reads)):
            self.timed_gets(s.port, paths[:20])  # warm: the connection and the first touch of each route
            ms = self.timed_gets(s.port, paths)
            out[name] = {"n": len(ms), "p50_ms": percentile(ms, .5), "p99_ms": percentile(ms, .99), "max_ms": max(ms)}
        self.procs.stop(s)
        return out

    def finished_ids(self, port, window, count, pages=20):
        """count ids of finished tasks picked at random from the whole window: list pages that start
        at random moments of it (an id is a ULID, so a cursor is a time)."""
        client = Client(port)
        ids = []
        for _ in range(pages):
            page = client.call("GET", f"/v1/tasks?state=succeeded&limit={min(1000, count // pages + 1)}&cursor={cursor_at(random.randint(*window))}")
            ids += [t["id"] for t in page["tasks"]]
        client.close()
        if not ids:
            raise SystemExit(f"no finished task listed between {window[0]} and {window[1]} ms")
        return [random.choice(ids) for _ in range(count)]

    def timed_gets(self, port, paths):
        """Milliseconds of each GET, one after another on one keep-alive connection, as the driver
        sees them (its own overhead included)."""
        client = Client(port)
        ms = []
        for path in paths:
            start = time.perf_counter()
            client.call("GET", path)
            ms.append((time.perf_counter() - start) * 1000)
        client.close()
        return ms

    # ------------------------------------------------------------ store micro-benchmark

    def store(self):
        out = {}
        for sync in ("full", "normal"):
            out[sync] = self.bench_store("--repeats", str(self.repeats), "--scale", str(self.sizes.store_scale), "--sync", sync)
        self.say("store: done")
        return out

    def bench_store(self, *argv, timeout=1800):
        """Runs sluice-bench-store to its end; its output."""
        done = subprocess.run([f"{self.bin}/sluice-bench-store", *argv], capture_output=True, text=True, timeout=timeout, cwd=self.work)
        if done.returncode != 0:
            raise SystemExit(f"sluice-bench-store {' '.join(argv)} exited with {done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}")
        return done.stdout

    # ------------------------------------------------------------ PostgreSQL (issue 11)

    def postgres(self):
        import pgbench
        return pgbench.run_postgres(self)

    # ------------------------------------------------------------ the console (issue 14)

    CONSOLE_PAGES = ["/ui/", "/ui/queues", "/ui/pools", "/ui/tasks", "/ui/tasks?queue=mail&state=queued",
                     "/ui/tasks?args.customer=42", "/ui/tasks?args=order%20999", "/ui/tasks/{id}", "/ui/workers", "/ui/schedules"]

    def console(self):
        """Each console page and its 2-second refresh fragment, timed with console_tasks tasks in the store."""
        z = self.sizes
        out = {"tasks": z.console_tasks, "requests": z.console_requests, "pages": {}, "fill_seconds": [],
               "console_bytes": console_bytes(self.bin)}
        for _ in range(self.repeats):
            s = self.serve("--no-pool", "--max-body", "10000000")
            began = time.monotonic()

            def batch(i):
                n = min(1000, z.console_tasks - i * 1000)
                body = [{"kind": "echo", "queue": ["default", "mail", "reports"][j % 3],
                         "args": {"customer": (i * 1000 + j) % 5000, "note": "order %d" % (i * 1000 + j)}} for j in range(n)]
                client = Client(s.port)
                client.call("POST", "/v1/tasks/batch", body)
                client.close()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(batch, range((z.console_tasks + 999) // 1000)))
            out["fill_seconds"].append(time.monotonic() - began)
            client = Client(s.port)
            task_id = client.call("GET", "/v1/tasks?limit=1")["tasks"][0]["id"]
            for page in self.CONSOLE_PAGES:
                path = page.replace("{id}", task_id)
                for fragment in (False, True):
                    times = []
                    for _ in range(z.console_requests):
                        began = time.perf_counter()
                        client.conn.request("GET", path, headers={"X-Sluice-Fragment": "1"} if fragment else {})
                        r = client.conn.getresponse()
                        body = r.read()
                        times.append((time.perf_counter() - began) * 1000)
                        if r.status != 200 or not body:
                            raise SystemExit(f"console: GET {path} answered {r.status}, {len(body)} bytes")
                    out["pages"].setdefault(page, {"page": [], "fragment": []})["fragment" if fragment else "page"].append(statistics.median(times))
            client.close()
            self.procs.stop(s)
        slowest = max(max(med(v["page"]), med(v["fragment"])) for v in out["pages"].values())
        self.say(f"console: slowest page or fragment {slowest:.1f} ms with {z.console_tasks} tasks")
        return out

    def say(self, text):
        print(f"  {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- report

TARGETS = """Targets (issue 5): seed ≤ 1.02 × ideal with concurrency ≥ 50 and faster than FastAPI's async
endpoint in the same run; burst ≤ 1.05 × ideal; durable HTTP enqueue ≥ 75% of the bare Hummingbird
ceiling; drain ≥ 25,000 tasks/s with one worker process and ≥ 20 × Huey in the same run;
idle→start p50 < 1 ms in-process; `/healthz` p99 < 5 ms; idle RSS < 40 MB server, < 30 MB worker.
Issue 10, with 1,000,000 finished and 1,000,000 scheduled tasks in the file: `/healthz` and
`GET /v1/tasks/{id}` p99 < 5 ms, `GET /v1/queues` < 50 ms, durable enqueue and drain ≥ 0.9 × an empty
file's in the same run. Issue 11 (PostgreSQL): drain ≥ 15,000 tasks/s with one worker process, ≥ 1.3 × the faster
of pgqueuer and procrastinate and ≥ 0.5 × PostgreSQL's own SKIP LOCKED claim+complete limit in the same run; HTTP
enqueue ≥ 10,000/s; enqueue→start p50 < 5 ms on an idle worker. Issue 14 (console), with 1,000,000 tasks in the
store: every page < 50 ms, every refresh fragment < 20 ms, < 2 MB of binary. Issue 13 (Python workers): no-op
drain through one Python worker process with 16 threads ≥ 5,000 tasks/s and ≥ 2 × Huey's thread consumer and
Celery's thread pool (Redis broker) with 16 threads in the same run; the seed through Python workers within 2% of
the ab floor, beside the seed's four originals in the same run."""


def render_seed(r, meta):
    n, c, s = r["n"], r["c"], r["sleep"]
    ideal = n / c * s
    lines = [f"`ab -n {n} -c {c}`, each request blocks {s:g} s. Ideal `N / C × S` = {ideal:g} s. ab opens its "
             f"first connection alone and the other {c - 1} after it answers, so no server can beat "
             f"{ideal + s:g} s (the *ab floor*, ideal + S).", "",
             "| server | threads for the blocking call | total s, median (min–max) | requests/s | × ideal | × ab floor | failed |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for pool, runs in r["sluice"].items():
        t = [x["seconds"] for x in runs]
        lines.append(f"| Sluice `POST /v1/tasks?wait=300`, `--concurrency {pool}` | {pool} | {summary(t)} | "
                     f"{med([x['rps'] for x in runs]):.2f} | {med(t) / ideal:.3f} | {med(t) / (ideal + s):.3f} | "
                     f"{sum(x['failed'] for x in runs)} |")
    threads = {"plain": {"sync": "40 (AnyIO limiter)", "async": "none (asyncio.sleep)", "sync_async": f"{min(32, os.cpu_count() + 4)} (default executor)",
                         "sync_async_fastapi": "40 (AnyIO limiter)"},
               "tuned": {"sync": "200 (limiter)", "async": "none (asyncio.sleep)", "sync_async": "100 (own executor)",
                         "sync_async_fastapi": "200 (limiter)"}}
    for variant, endpoints in r["fastapi"].items():
        for endpoint, runs in endpoints.items():
            t = [x["seconds"] for x in runs]
            lines.append(f"| FastAPI {variant} `GET /test/{endpoint}` | {threads[variant][endpoint]} | {summary(t)} | "
                         f"{med([x['rps'] for x in runs]):.2f} | {med(t) / ideal:.3f} | {med(t) / (ideal + s):.3f} | "
                         f"{sum(x['failed'] for x in runs)} |")
    best = min((med([x["seconds"] for x in runs]), int(p)) for p, runs in r["sluice"].items() if int(p) >= 50) if any(int(p) >= 50 for p in r["sluice"]) else None
    asyncs = [med([x["seconds"] for x in e["async"]]) for e in r["fastapi"].values() if "async" in e]
    if best:
        lines += ["", f"- Seed target, Sluice at concurrency ≥ 50 (best: {best[1]}): {best[0]:.2f} s = {best[0] / ideal:.3f} × ideal "
                  f"(target 1.02): {verdict(best[0] <= 1.02 * ideal, f'{(best[0] / ideal / 1.02 - 1) * 100:.1f}%')}; "
                  f"against the ab floor {best[0] / (ideal + s):.3f}."]
        if asyncs:
            a = min(asyncs)
            lines.append(f"- Faster than FastAPI's async endpoint ({a:.2f} s) in the same run: {verdict(best[0] < a, f'{best[0] - a:.2f} s')}.")
    return lines


def render_seed_python(r, meta):
    n, c, s = r["n"], r["c"], r["sleep"]
    ideal, floor = n / c * s, n / c * s + s
    lines = [f"examples/fastapi: the seed's app on Sluice, each endpoint enqueuing and awaiting its call, which runs in "
             f"one Python worker process (`sluice-worker`, pool of 50). `ab -n {n} -c {c}`, {s:g} s a call; ideal {ideal:g} s, "
             f"ab floor {floor:g} s. Beside each, the seed's own app unchanged (FastAPI's defaults: AnyIO's 40 "
             f"tokens, the default executor's min(32, cores + 4) threads) in the same run, when the run has it.", "",
             "| endpoint | total s, median (min–max) | requests/s | × ideal | × ab floor | failed |", "|---|---:|---:|---:|---:|---:|"]
    rows = [(f"`GET /test/{e}` through Sluice", runs) for e, runs in r["endpoints"].items()]
    rows += [(f"`GET /test/{e}`, the seed's original", runs) for e, runs in r.get("originals", {}).items() if runs]
    for label, runs in rows:
        t = [x["seconds"] for x in runs]
        lines.append(f"| {label} | {summary(t)} | {med([x['rps'] for x in runs]):.2f} | {med(t) / ideal:.3f} | "
                     f"{med(t) / floor:.3f} | {sum(x['failed'] for x in runs)} |")
    worst = max(med([x["seconds"] for x in runs]) for runs in r["endpoints"].values()) if r["endpoints"] else None
    if worst is not None:
        lines += ["", f"- Target (issue 13), every endpoint within 2% of the ab floor: worst {worst:.2f} s = {worst / floor:.3f} × floor: "
                  f"{verdict(worst <= 1.02 * floor, f'{(worst / floor / 1.02 - 1) * 100:.1f}%')}."]
    return lines


def render_python_drain(r, meta):
    n, threads = r["tasks"], r["threads"]
    huey, celery = med(r["huey"]), med(r["celery"]) if r.get("celery") else None
    lines = [f"{n:,} no-op tasks pre-filled, then drained by one Python worker process (`sluice-worker`, the package in "
             f"`clients/python`, one pool of {threads} threads, against `sluice serve --no-pool`), by Huey's consumer "
             f"(`SqliteHuey`, `-k thread -w {threads}`) and by one Celery worker (Redis broker and results, "
             f"`--pool threads --concurrency {threads}`, its default prefetch of 4 a thread, without gossip, mingle "
             f"and heartbeat): tasks/s from spawning the worker to the last task done (its result stored).", "",
             "| worker | tasks/s, median (min–max) | × Huey |", "|---|---:|---:|"]
    for prefetch, runs in r["sluice"].items():
        lines.append(f"| Sluice Python worker, {threads} threads, `--prefetch {prefetch}` | {summary(runs, '{:.0f}')} | {med(runs) / huey:.2f} |")
    lines.append(f"| Huey thread consumer, {threads} threads | {summary(r['huey'], '{:.0f}')} | 1.00 |")
    if celery:
        lines.append(f"| Celery thread pool, {threads} threads, Redis | {summary(r['celery'], '{:.0f}')} | {celery / huey:.2f} |")
    best = max(med(v) for v in r["sluice"].values())
    lines += ["", f"- Target (issue 13) ≥ 5,000 tasks/s: best {best:,.0f}/s — {verdict(best >= 5000, f'{(1 - best / 5000) * 100:.0f}%')}.",
              f"- Target ≥ 2 × Huey's thread consumer: {best / huey:.2f} × — {verdict(best >= 2 * huey, f'{(1 - best / huey / 2) * 100:.0f}%')}."]
    if celery:
        lines.append(f"- Target ≥ 2 × Celery's thread pool: {best / celery:.2f} × — {verdict(best >= 2 * celery, f'{(1 - best / celery / 2) * 100:.0f}%')}.")
    else:
        lines.append("- Celery (Redis broker) was not measured in this run.")
    return lines


def render_burst(r, meta):
    ideal = r["tasks"] / r["pool"] * r["sleep"]
    s, h = med(r["sluice"]), med(r["huey"])
    per_task = r.get("sluice_per_task") or []
    rows = [f"| Sluice, each task awaited (`GET /v1/tasks/ID?wait=` on 8 connections) | {summary(per_task, '{:.3f}')} | {med(per_task) / ideal:.3f} |"] if per_task else []
    return [f"{r['tasks']} × `sleep` {r['sleep']:g} s on a warm pool of {r['pool']}, from the enqueue to the last result. "
            f"Ideal {ideal:g} s. Sluice: one `POST /v1/tasks/batch?wait=60`, answered when every task is final (a Celery "
            f"group's `get()`); also, in the same runs, the same batch with each task's result awaited separately. Huey: "
            f"`SqliteHuey`, `huey_consumer -k thread -w 50 -d 0.01 -m 0.1`, enqueued from the driver, results counted every 5 ms.", "",
            "| system | seconds, median (min–max) | × ideal |", "|---|---:|---:|",
            f"| Sluice, batch awaited | {summary(r['sluice'], '{:.3f}')} | {s / ideal:.3f} |", *rows,
            f"| Huey (SQLite, 50 threads) | {summary(r['huey'], '{:.3f}')} | {h / ideal:.3f} |", "",
            f"- Burst ≤ 1.05 × ideal: {s / ideal:.3f} × — {verdict(s <= 1.05 * ideal, f'{(s / ideal / 1.05 - 1) * 100:.1f}%')}; Huey/Sluice time ratio {h / s:.1f}."]


def render_enqueue(r, meta):
    bare = med([x["tasks_per_s"] for x in r["cases"]["bare"]])
    lines = [f"`{r['wrk']}` (50 keep-alive connections) posting one task per request (batch: one array per request). "
             "Durable cases run `serve --no-pool` and check afterwards that every acknowledged task is in the database.", "",
             "| case | tasks/s, median (min–max) | ratio to bare | non-2xx |", "|---|---:|---:|---:|"]
    for key, runs in r["cases"].items():
        v = [x["tasks_per_s"] for x in runs]
        lines.append(f"| {r['labels'][key]} | {summary(v, '{:.0f}')} | {med(v) / bare:.2f} | {sum(x['non2xx'] for x in runs)} |")
    lines.append(f"| Huey `SqliteHuey` enqueue in-process, one thread, {r['huey_count']:,} tasks | {summary(r['huey'], '{:.0f}')} | – | – |")
    full = med([x["tasks_per_s"] for x in r["cases"]["full"]])
    ff = med([x["tasks_per_s"] for x in r["cases"]["ff_delayed"]])
    lines += ["", f"- Durable enqueue ≥ 0.65 of the bare ceiling: {full / bare:.2f} — {verdict(full / bare >= 0.65, f'{(1 - full / bare / 0.65) * 100:.0f}%')}.",
              f"- Fire-and-forget (enqueue only) is {ff / bare:.2f} of the ceiling; durable is {full / med(r['huey']):.2f} × Huey's in-process enqueue."]
    return lines


def render_drain(r, meta):
    one = med(r["sluice"]["1"])
    best_huey = max(med(v) for v in r["huey"].values())
    lines = [f"{r['tasks']:,} pre-filled `echo` tasks drained by `sluice worker --concurrency {r['worker_concurrency']}` processes "
             f"(time from spawning the workers to the last `finished_at`); Huey drains {r['huey_tasks']:,} pre-filled tasks "
             "that each store a result (`-k thread`, poll 10 ms to 100 ms; time to the last result, counted every 10 ms).", "",
             "| system | tasks/s, median (min–max) |", "|---|---:|"]
    for k, v in r["sluice"].items():
        lines.append(f"| Sluice, {k} worker process{'es' if k != '1' else ''} | {summary(v, '{:.0f}')} |")
    if r.get("prefetched"):
        lines.append(f"| Sluice, 1 worker process, `--prefetch {r['prefetch']}` | {summary(r['prefetched'], '{:.0f}')} |")
    for k, v in r["huey"].items():
        lines.append(f"| Huey SQLite, `-w {k}` | {summary(v, '{:.0f}')} |")
    lines += ["", f"- ≥ 25,000 tasks/s with one worker: {one:.0f} — {verdict(one >= 25_000, f'{(1 - one / 25_000) * 100:.0f}%')}.",
              f"- ≥ 20 × Huey (best Huey {best_huey:.0f}/s): {one / best_huey:.1f} × — {verdict(one >= 20 * best_huey, f'{(1 - one / best_huey / 20) * 100:.0f}%')}."]
    return lines


def render_latency(r, meta):
    lines = [f"One client posts `echo` tasks at {r['rate']}/s for {r['seconds']:g} s; times are `started_at − created_at` and "
             "`finished_at − created_at` as the store records them (`created_at` is taken when the server accepts the request).", "",
             "| where it runs | tasks | enqueue→start p50 | p99 | enqueue→finish p50 | p99 |", "|---|---:|---:|---:|---:|---:|"]
    names = {"in_process": "in-process pool (`serve --concurrency 10`)", "worker": "`sluice worker` beside `serve --no-pool`"}
    for k in ("in_process", "worker"):
        x = r[k]
        lines.append(f"| {names[k]} | {x['tasks']} | {percentile(x['start_ms'], .5):.2f} ms | {percentile(x['start_ms'], .99):.2f} ms | "
                     f"{percentile(x['finish_ms'], .5):.2f} ms | {percentile(x['finish_ms'], .99):.2f} ms |")
    if all("wait_ms" in r[k] for k in ("in_process", "worker")):
        lines += ["", "Then one client posts `echo` tasks with `?wait=10` one at a time, idle 50 to 130 ms between: the round trip "
                  "a caller that wants the result waits, measured by the client. A task finished by a worker in another process "
                  "is seen when the server hears that process's write to the file.", "",
                  "| where it runs | requests | enqueue-and-wait p50 | p90 | max |", "|---|---:|---:|---:|---:|"]
        for k in ("in_process", "worker"):
            w = r[k]["wait_ms"]
            lines.append(f"| {names[k]} | {len(w)} | {percentile(w, .5):.2f} ms | {percentile(w, .9):.2f} ms | {max(w):.2f} ms |")
    p50 = percentile(r["in_process"]["start_ms"], .5)
    lines += ["", f"- In-process idle→start p50 < 1 ms: {p50:.2f} ms — {verdict(p50 < 1, f'{(p50 - 1) * 1000:.0f} µs')}."]
    return lines


def render_resources(r, meta):
    lines = ["Resident memory (VmRSS) after 2 s idle, and with tasks queued on a queue no pool drains.", "",
             "| process | MB, median (min–max) |", "|---|---:|",
             f"| `sluice serve`, idle (default pool of 10) | {summary(r['serve_idle'], '{:.1f}')} |",
             f"| `sluice worker`, idle | {summary(r['worker_idle'], '{:.1f}')} |",
             f"| `sluice serve` with {r['queued']:,} tasks queued | {summary(r['serve_queued'], '{:.1f}')} |",
             f"| `sluice worker --queues parked --concurrency 1`, 2 s into draining them | {summary(r['worker_queued'], '{:.1f}')} |", ""]
    s, w = med(r["serve_idle"]), med(r["worker_idle"])
    lines += [f"- Idle server < 40 MB: {s:.2f} — {verdict(s < 40, f'{s - 40:.2f} MB')}; idle worker < 30 MB: {w:.2f} — {verdict(w < 30, f'{w - 30:.2f} MB')}.",
              "- The pool of 1,000 busy threads is measured under *Event-loop health*."]
    return lines


def render_health(r, meta):
    runs = r["runs"]
    p99 = med([x["p99_ms"] for x in runs])
    return [f"`sluice serve --concurrency {r['busy']}` with {r['busy']} `sleep` tasks running; `wrk -t1 -c1 --latency` on `GET /healthz`.", "",
            "| measure | median (min–max) |", "|---|---:|",
            f"| busy tasks while measuring | {summary([x['busy'] for x in runs], '{:.0f}')} |",
            f"| `/healthz` p50 | {summary([x['p50_ms'] for x in runs])} ms |",
            f"| `/healthz` p99 | {summary([x['p99_ms'] for x in runs])} ms |",
            f"| `/healthz` requests/s | {summary([x['rps'] for x in runs], '{:.0f}')} |",
            f"| RSS of `sluice serve` | {summary([x['rss_mb'] for x in runs], '{:.1f}')} MB |",
            f"| threads of `sluice serve` | {summary([x['threads'] for x in runs], '{:.0f}')} |", "",
            f"- `/healthz` p99 < 5 ms: {p99:.2f} ms — {verdict(p99 < 5, f'{p99 - 5:.2f} ms')}."]


def render_scale(r, meta):
    def reads(file, route, p):
        return [x[route][p] for x in r[file]["reads"]]
    def rate(file, what):
        return [x["tasks_per_s"] for x in r[file][what]]
    rows = [(f"`{label}` {p[:3]}", reads("empty", key, p), reads("populated", key, p), "{:.2f}", " ms")
            for key, label in (("healthz", "GET /healthz"), ("task", "GET /v1/tasks/{id}"), ("queues", "GET /v1/queues"))
            for p in ("p50_ms", "p99_ms")]
    rows += [("durable enqueue (`serve --no-pool`, synchronous=full), tasks/s", rate("empty", "enqueue"), rate("populated", "enqueue"), "{:.0f}", ""),
             ("drain, one `sluice worker`, tasks/s", rate("empty", "drain"), rate("populated", "drain"), "{:.0f}", "")]
    lines = [f"Two files in the same run, alternating within each repeat: an empty one, and one that `sluice-bench-store populate` "
             f"filled through the store with {r['finished']:,} finished tasks and {r['scheduled']:,} scheduled a day ahead "
             f"(in {r['populate_seconds']:,.1f} s), a fresh copy for each measurement. Reads: {r['reads']:,} sequential GETs per route "
             "on one keep-alive connection to `sluice serve` (its default pool idle), timed by the Python driver, its own overhead "
             "included, after 20 unmeasured ones; task ids are finished tasks picked at random across the history through list "
             f"pages at random cursors (the empty file first runs {r['reads']:,} `echo` tasks to have some). Enqueue: `{r['wrk']}` "
             f"as in section 3. Drain: {r['drain_tasks']:,} `echo` tasks as in section 4, `--concurrency {r['worker_concurrency']}`.", "",
             "| measure | empty file | populated file | populated / empty |", "|---|---:|---:|---:|"]
    for label, empty, full, fmt, unit in rows:
        lines.append(f"| {label} | {summary(empty, fmt)}{unit} | {summary(full, fmt)}{unit} | {med(full) / med(empty):.2f} |")
    health, task, queues = (med(reads("populated", k, "p99_ms")) for k in ("healthz", "task", "queues"))
    enqueue, drain = (med(rate("populated", k)) / med(rate("empty", k)) for k in ("enqueue", "drain"))
    lines += ["", f"- On the populated file, `/healthz` p99 < 5 ms: {health:.2f} ms — {verdict(health < 5, f'{health - 5:.2f} ms')}; "
              f"`GET /v1/tasks/{{id}}` p99 < 5 ms: {task:.2f} ms — {verdict(task < 5, f'{task - 5:.2f} ms')}; "
              f"`GET /v1/queues` p99 < 50 ms: {queues:.2f} ms — {verdict(queues < 50, f'{queues - 50:.2f} ms')}.",
              f"- Durable enqueue ≥ 0.9 × the empty file's: {enqueue:.2f} — {verdict(enqueue >= 0.9, f'{(1 - enqueue / 0.9) * 100:.0f}%')}; "
              f"drain ≥ 0.9 ×: {drain:.2f} — {verdict(drain >= 0.9, f'{(1 - drain / 0.9) * 100:.0f}%')}."]
    return lines


def render_store(r, meta):
    lines = ["`sluice-bench-store`: tasks per second through `SQLiteTaskStore` in one process, beside raw SQLite doing the "
             "same work on the same schema in the same run (component figures, no HTTP).", ""]
    for sync, text in r.items():
        lines += [f"synchronous={sync}:", "", *[l for l in text.strip().splitlines() if l.startswith("|")], ""]
    return lines


def render_postgres(r, meta):
    n = r["tasks"]
    rate = lambda runs: [x["tasks_per_s"] for x in runs]
    raw, pgq, pcr = med(rate(r["raw"])), med(rate(r["pgqueuer"])), med(rate(r["procrastinate"]))
    one = med(rate(r["sluice"]["1"]))
    peer, peer_name = max((pgq, "pgqueuer"), (pcr, "procrastinate"))
    lines = [f"Peers: {r['versions']}.", "", f"One {r['server']} server for every system in the run, started by the scenario on loopback: "
             f"{r['settings']}. fsync is off, so no commit waits for the disk"
             + (f" (this disk's fdatasync took {r['fdatasync_ms']:.2f} ms, median of 100 at the start of the run)" if r.get("fdatasync_ms") else "")
             + ": "
             "the figures are CPU and round-trip costs, the same for every system. "
             + (f"The machine's 1-minute load average, sampled at the start, at each repeat and at the end: "
                f"{', '.join(f'{x:.1f}' for x in r['load'])} (other sessions' builds share the {os.cpu_count()} cores). " if r.get("load") else "")
             + "Each drain gets a database of its own; "
             f"Sluice's are clones of one template that `sluice serve --no-pool` filled through `POST /v1/tasks/batch`.", "",
             f"**Drain** of {n:,} no-op tasks (procrastinate: {r['procrastinate_tasks']:,}), from starting the consumer to "
             f"the last task finished. Sluice: `sluice worker --database URL --concurrency {r['worker_concurrency']}` processes, "
             "`echo` tasks, time to the last `finished_at`, waiting on the counters `GET /v1/queues` reads.", "",
             "| system | tasks/s, median (min–max) | ratio to PostgreSQL's limit |", "|---|---:|---:|",
             f"| PostgreSQL's own limit: one asyncpg connection, `SKIP LOCKED` claim of 64 + one batched completion, each a transaction | {summary(rate(r['raw']), '{:.0f}')} | 1.00 |",
             f"| pgqueuer, one process, `batch_size=100`, asyncpg, `mode=drain` | {summary(rate(r['pgqueuer']), '{:.0f}')} | {pgq / raw:.2f} |",
             f"| procrastinate, one process, `concurrency=32`, psycopg pool, `wait=False` | {summary(rate(r['procrastinate']), '{:.0f}')} | {pcr / raw:.2f} |"]
    for k, runs in r["sluice"].items():
        lines.append(f"| Sluice, {k} worker process{'es' if k != '1' else ''} | {summary(rate(runs), '{:.0f}')} | {med(rate(runs)) / raw:.2f} |")
    if r.get("wide"):
        lines.append(f"| Sluice, 1 worker process, `--concurrency {r['wide_concurrency']}` | {summary(rate(r['wide']), '{:.0f}')} | {med(rate(r['wide'])) / raw:.2f} |")
    if r.get("prefetched"):
        lines.append(f"| Sluice, 1 worker process, `--prefetch {r['prefetch']}` | {summary(rate(r['prefetched']), '{:.0f}')} | {med(rate(r['prefetched'])) / raw:.2f} |")
    if r["held"]:
        h = r["held"][0]
        lines.append(f"| Sluice, 1 worker, a transaction with an xid held open on another connection for the whole drain | "
                     f"{summary(rate(r['held']), '{:.0f}')} | {med(rate(r['held'])) / raw:.2f} |")
    lost = [x for runs in r["sluice"].values() for x in runs] + r["held"] + r.get("wide", []) + r.get("prefetched", [])
    lines += ["", f"Every Sluice drain finished all {n:,} tasks: {'yes' if all(x['succeeded'] == n and x['left'] == 0 for x in lost) else 'NO'}; "
              f"tasks that needed a second attempt: {sum(x['retried'] for x in lost)}."]
    for k, runs in r["sluice"].items():
        cpu = [x for x in runs if "cpu" in x]
        if cpu:
            lines.append(f"CPU per task with {k} worker process{'es' if k != '1' else ''} (median over the repeats): "
                         f"the workers {med([x['cpu']['workers'] / n * 1e6 for x in cpu]):.0f} µs, PostgreSQL's backends "
                         f"{med([x['cpu']['server'] / n * 1e6 for x in cpu]):.0f} µs; wall time {med([x['seconds'] / n * 1e6 for x in cpu]):.0f} µs "
                         f"a task on {os.cpu_count()} cores.")
    if r["held"]:
        lines.append(f"With the snapshot held the tasks table had {r['held'][0].get('dead_rows')} dead rows at the end "
                     f"(nothing could be vacuumed); the held drain ran at {med(rate(r['held'])) / one:.2f} × the median 1-worker drain.")
    e = r["enqueue"]
    single = med(rate(e["single"]))
    lines += ["", f"**HTTP enqueue**, `{e['wrk']}` on `sluice serve --no-pool --database URL`; every acknowledged task was found stored.", "",
              "| case | tasks/s, median (min–max) | non-2xx |", "|---|---:|---:|",
              f"| one task a request (`POST /v1/tasks`) | {summary(rate(e['single']), '{:.0f}')} | {sum(x['non2xx'] for x in e['single'])} |",
              f"| {e['batch_size']} tasks a request (`POST /v1/tasks/batch`) | {summary(rate(e['batch']), '{:.0f}')} | {sum(x['non2xx'] for x in e['batch'])} |",
              f"| 1,000 a request, one client, sequential (filling the drain template) | {summary(rate(r['fill']), '{:.0f}')} | 0 |"]
    l = r["latency"]
    p50 = percentile(l["start_ms"], 0.5)
    lines += ["", f"**Enqueue→start on an idle worker**: one client posts an `echo`, polls `GET /v1/tasks/{{id}}` until it "
              f"succeeded, pauses 50 to 130 ms, and posts the next ({l['tasks']} of {l['asked']}); one `sluice worker "
              "--concurrency 16` beside `serve --no-pool`. Times are `started_at − created_at` and `finished_at − created_at` "
              "as PostgreSQL recorded them (both `now()` of their transactions).", "",
              "| enqueue→start p50 | p90 | p99 | enqueue→finish p50 | p99 |", "|---:|---:|---:|---:|---:|",
              f"| {p50:.2f} ms | {percentile(l['start_ms'], 0.9):.2f} ms | {percentile(l['start_ms'], 0.99):.2f} ms | "
              f"{percentile(l['finish_ms'], 0.5):.2f} ms | {percentile(l['finish_ms'], 0.99):.2f} ms |"]
    if l.get("wait_ms"):
        w = l["wait_ms"]
        lines += ["", f"**Enqueue and wait across processes**: the same client then posts {len(w)} `echo` tasks with `?wait=10`, one "
                  "at a time with the same gaps; the server learns that the worker finished one from the worker's `NOTIFY`. "
                  f"Round trip as the client measured it: p50 {percentile(w, .5):.2f} ms, p90 {percentile(w, .9):.2f} ms, "
                  f"max {max(w):.2f} ms."]
    for key, what in (("drain_1_worker", "the first 1-worker drain"), ("enqueue_single", "the first one-task-a-request HTTP enqueue")):
        st = r["statements"].get(key)
        if not st:
            continue
        lines += ["", f"**Where the server's time goes** in {what} (`pg_stat_statements`, top statements by "
                  "total execution time, lock waits included; the server's time only, not the round trips):", "",
                  "| calls | total ms | mean ms | rows | statement |", "|---:|---:|---:|---:|---|"]
        for x in st[:6]:
            q = x["query"].replace("|", "\\|")
            lines.append(f"| {x['calls']} | {x['total_ms']:.0f} | {x['mean_ms']:.3f} | {x['rows']} | `{q[:220]}{'…' if len(q) > 220 else ''}` |")
    lines += ["",
              f"- Drain ≥ 15,000 tasks/s with one worker: {one:.0f} — {verdict(one >= 15000, f'{(1 - one / 15000) * 100:.0f}%')}.",
              f"- ≥ 1.3 × the faster peer ({peer_name}, {peer:.0f}/s): {one / peer:.2f} × — {verdict(one >= 1.3 * peer, f'{(1 - one / peer / 1.3) * 100:.0f}%')}.",
              f"- ≥ 0.5 × PostgreSQL's own claim+complete limit ({raw:.0f}/s): {one / raw:.2f} × — {verdict(one >= 0.5 * raw, f'{(1 - one / raw / 0.5) * 100:.0f}%')}.",
              f"- HTTP enqueue ≥ 10,000/s: {single:.0f} — {verdict(single >= 10000, f'{(1 - single / 10000) * 100:.0f}%')}.",
              f"- Enqueue→start p50 < 5 ms on an idle worker: {p50:.2f} ms — {verdict(p50 < 5, f'{p50 - 5:.2f} ms')}."]
    return lines


def render_console(r, meta):
    lines = [f"`sluice serve --no-pool` on a SQLite file that {r['tasks']:,} `echo` tasks filled through `POST /v1/tasks/batch` "
             f"(three queues, args `{{\"customer\", \"note\"}}`; {med(r['fill_seconds']):.0f} s), then each page asked "
             f"{r['requests']} times in a row and its refresh fragment (`X-Sluice-Fragment: 1`, what the 2-second refresh asks) "
             "as many, on one keep-alive connection; the median of each repeat, then the median over the repeats.", "",
             "| page | page ms | fragment ms |", "|---|---:|---:|"]
    for page, v in r["pages"].items():
        lines.append(f"| `{page}` | {summary(v['page'], '{:.1f}')} | {summary(v['fragment'], '{:.1f}')} |")
    page = max(med(v["page"]) for v in r["pages"].values())
    fragment = max(med(v["fragment"]) for v in r["pages"].values())
    lines += ["", f"- Every page < 50 ms: slowest {page:.1f} ms — {verdict(page < 50, f'{page - 50:.1f} ms')}.",
              f"- Every fragment < 20 ms: slowest {fragment:.1f} ms — {verdict(fragment < 20, f'{fragment - 20:.1f} ms')}."]
    if r.get("console_bytes") is not None:
        kb = r["console_bytes"] / 1024
        lines.append(f"- Console < 2 MB of the binary: its object files (`Sources/SluiceHTTP/Console/*.swift`, by `size`) "
                     f"come to {kb:.0f} KB — {verdict(kb < 2048, f'{kb - 2048:.0f} KB')}; it runs in `sluice serve`, no extra process.")
    return lines


TITLES = {"seed": "1. The seed, reproduced", "seed-python": "1b. The seed through Python workers", "burst": "2. Blocking burst", "enqueue": "3. Enqueue throughput",
          "drain": "4. Drain throughput", "latency": "5. Latency", "resources": "6. Resources",
          "health": "7. Event-loop health", "scale": "8. Scale: a file with a long history", "store": "Store micro-benchmark",
          "postgres": "9. PostgreSQL (issue 11)", "console": "10. The console (issue 14)",
          "python-drain": "11. Drain through a Python worker (issue 13)"}
RENDER = {"seed": render_seed, "seed-python": render_seed_python, "burst": render_burst, "enqueue": render_enqueue, "drain": render_drain,
          "latency": render_latency, "resources": render_resources, "health": render_health, "scale": render_scale,
          "store": render_store, "postgres": render_postgres, "console": render_console, "python-drain": render_python_drain}


def plot(results, imgdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    os.makedirs(imgdir, exist_ok=True)
    made = []
    if "seed" in results:
        r = results["seed"]["data"]
        ideal = r["n"] / r["c"] * r["sleep"]
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        pools = sorted(int(p) for p in r["sluice"])
        ax.plot(pools, [med([x["seconds"] for x in r["sluice"][str(p)]]) for p in pools], "o-", label="Sluice, pool concurrency")
        eff = {"plain": {"sync": 40, "sync_async": min(32, os.cpu_count() + 4), "sync_async_fastapi": 40},
               "tuned": {"sync": 200, "sync_async": 100, "sync_async_fastapi": 200}}
        marks = {"sync": "s", "sync_async": "^", "sync_async_fastapi": "D"}
        for variant, endpoints in r["fastapi"].items():
            for ep, runs in endpoints.items():
                t = med([x["seconds"] for x in runs])
                if ep == "async":
                    ax.axhline(t, ls=":", color="grey" if variant == "plain" else "black", label=f"FastAPI {variant} /test/async (no threads)")
                else:
                    ax.plot([eff[variant][ep]], [t], marks[ep], ms=8, fillstyle="none" if variant == "plain" else "full",
                            label=f"FastAPI {variant} /test/{ep}")
        ax.axhline(ideal, ls="--", color="green", label=f"ideal N/C×S = {ideal:g} s")
        ax.axhline(ideal + r["sleep"], ls="-.", color="red", lw=0.8, label=f"ab floor (ideal + S) = {ideal + r['sleep']:g} s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("threads for the blocking call (pool concurrency)")
        ax.set_ylabel("total time (s), log")
        ax.set_title(f"ab -n {r['n']} -c {r['c']}, {r['sleep']:g} s blocking per request")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(imgdir, "seed.png"), dpi=110)
        plt.close(fig)
        made.append("seed.png")
    bars = []
    if "enqueue" in results:
        r = results["enqueue"]["data"]
        bars += [(f"Sluice {k}", med([x["tasks_per_s"] for x in v])) for k, v in r["cases"].items()]
        bars.append(("Huey enqueue", med(r["huey"])))
    if "drain" in results:
        r = results["drain"]["data"]
        bars += [(f"Sluice drain {k}w", med(v)) for k, v in r["sluice"].items()]
        bars += [(f"Huey drain -w{k}", med(v)) for k, v in r["huey"].items()]
    if bars:
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        ax.barh([b[0] for b in bars][::-1], [b[1] for b in bars][::-1], color=["tab:orange" if "Huey" in b[0] else "tab:blue" for b in bars][::-1])
        ax.set_xscale("log")
        ax.set_xlabel("tasks per second (log)")
        ax.set_title("Enqueue and drain throughput")
        fig.tight_layout()
        fig.savefig(os.path.join(imgdir, "throughput.png"), dpi=110)
        plt.close(fig)
        made.append("throughput.png")
    return made


def report(out, analysis):
    results = {}
    for name in SCENARIOS:
        path = os.path.join(out, "bench", "results", f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                results[name] = json.load(f)
    images = plot(results, os.path.join(out, "img"))
    newest = max((r["meta"] for r in results.values()), key=lambda m: m["date"], default=None)
    lines = ["# Benchmarks", "",
             "Rendered by `tools/bench/run` from the result files in `docs/bench/results/` (do not edit by hand; "
             "the analysis at the end is `docs/bench/analysis.md`). Each section says when and with which command it "
             "was measured. The machine is shared and noisy: figures are medians with (min–max) over the repeats, and a "
             "peer is compared only as a ratio measured in the same run.", ""]
    if newest:
        lines += [f"Machine: {newest['machine']}. Versions: {newest['versions']}.", ""]
    lines += [TARGETS, ""]
    for img in images:
        lines.append(f"![{img}](img/{img})")
    lines.append("")
    for name, res in results.items():
        m = res["meta"]
        sizes = "" if m["mode"] == "full" else f", {m['mode']} sizes (verdicts mean nothing at these sizes)" if m["mode"] in ("quick", "smoke") else f", {m['mode']} sizes"
        other = "" if (m["machine"], m["versions"]) == (newest["machine"], newest["versions"]) else f"; {m['machine']}, {m['versions']}"
        lines += [f"## {TITLES[name]}", "", f"*{m['date']}, `{m['command']}`, {m['repeats']} repeat(s){sizes}{other}.*", ""]
        lines += RENDER[name](res["data"], m) + [""]
    if analysis and os.path.exists(analysis):
        with open(analysis) as f:
            lines += [f.read().rstrip(), ""]
    with open(os.path.join(out, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines))
    return "\n".join(lines)


def check_smoke(out, names, z, text, meta):
    """What the smoke run claims, asserted (tools/test runs it after swift test): every scenario run
    left its result (from this run, not an older one in OUT) and its section, no request failed, and
    every count is the one asked for.
    Timings are never judged. Raises SystemExit naming every failure."""
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    def ab_ok(where, runs, n):
        need(runs, f"seed: no run of {where}")
        for x in runs:
            need(x["failed"] == 0 and x["complete"] == n, f"seed: {where}: {x['complete']} of {n} requests complete, {x['failed']} failed")

    def enqueue_ok(where, x, per_request=1):
        need(x["requests"] > 0 and x["non2xx"] == 0, f"{where}: {x['requests']} requests, {x['non2xx']} not 2xx")
        if "stored" in x:
            need(x["stored"] >= (x["requests"] - x["non2xx"]) * per_request, f"{where}: {x['stored']} stored, fewer than acknowledged")

    for name in names:
        path = os.path.join(out, "bench", "results", f"{name}.json")
        if not os.path.exists(path):
            problems.append(f"{name}: no result ({path})")
            continue
        with open(path) as f:
            r = json.load(f)
        need(r["meta"] == meta, f"{name}: the result in {path} is from another run ({r['meta']['date']})")
        r = r["data"]
        need(f"## {TITLES[name]}" in text, f"{name}: BENCHMARKS.md has no section '{TITLES[name]}'")
        if name == "seed":
            need(sorted(r["sluice"]) == sorted(str(p) for p in z.seed_pools), f"seed: Sluice ran pools {sorted(r['sluice'])}, not {z.seed_pools}")
            for pool, runs in r["sluice"].items():
                ab_ok(f"Sluice pool {pool}", runs, r["n"])
            need(sorted(r["fastapi"]) == ["plain", "tuned"], f"seed: FastAPI variants {sorted(r['fastapi'])}, not plain and tuned")
            for variant, endpoints in r["fastapi"].items():
                need(len(endpoints) == 4, f"seed: FastAPI {variant} ran {sorted(endpoints)}")
                for endpoint, runs in endpoints.items():
                    ab_ok(f"FastAPI {variant} /test/{endpoint}", runs, r["n"])
        elif name == "seed-python":
            need(sorted(r["endpoints"]) == sorted(["sync", "async", "sync_async", "sync_async_fastapi"]), f"seed-python: endpoints {sorted(r['endpoints'])}")
            for endpoint, runs in r["endpoints"].items():
                ab_ok(f"Python workers /test/{endpoint}", runs, r["n"])
            for endpoint, runs in r["originals"].items():
                ab_ok(f"the seed's original /test/{endpoint}", runs, r["n"])
        elif name == "python-drain":
            for prefetch, drained in r["drained"].items():
                need(drained and all(d == r["tasks"] for d in drained), f"python-drain: prefetch {prefetch} drained {drained} of {r['tasks']}")
            need(r["huey_drained"] and all(d == r["tasks"] for d in r["huey_drained"]), f"python-drain: Huey drained {r['huey_drained']} of {r['tasks']}")
            need(r["celery_drained"] and all(d == r["tasks"] for d in r["celery_drained"]), f"python-drain: Celery drained {r['celery_drained']} of {r['tasks']}")
        elif name == "burst":
            need(r["tasks"] == z.burst_tasks and r["sluice"] and r["huey"], f"burst: {r['tasks']} tasks, {len(r['sluice'])} Sluice and {len(r['huey'])} Huey runs")
        elif name == "enqueue":
            for key, runs in r["cases"].items():
                need(runs, f"enqueue: no run of {key}")
                for x in runs:
                    enqueue_ok(f"enqueue {key}", x, z.batch_size if key == "batch" else 1)
            need(len(r["cases"]) == 6, f"enqueue: cases {sorted(r['cases'])}")
            need(r["huey_count"] == z.huey_enqueue and r["huey"], f"enqueue: Huey enqueued {r['huey_count']} in {len(r['huey'])} runs")
        elif name == "drain":
            for who, tasks, drained in (("Sluice", r["tasks"], r["drained"]), ("Huey", r["huey_tasks"], r["huey_drained"])):
                counts = [c for runs in drained.values() for c in runs]
                need(len(drained) == 2 and counts and all(c == tasks for c in counts), f"drain: {who} finished {drained}, asked {tasks} a run")
            need(r["prefetched_drained"] and all(c == r["tasks"] for c in r["prefetched_drained"]), f"drain: with prefetch Sluice finished {r['prefetched_drained']}")
            need(r["tasks"] == z.drain and r["huey_tasks"] == z.huey_drain, "drain: sizes are not the smoke's")
        elif name == "latency":
            asked = int(z.latency_seconds * 100)
            for where in ("in_process", "worker"):
                need(r[where]["tasks"] == asked, f"latency: {where}: {r[where]['tasks']} tasks, asked {asked}")
                need(len(r[where]["wait_ms"]) == z.wait_tasks, f"latency: {where}: {len(r[where]['wait_ms'])} waits, asked {z.wait_tasks}")
        elif name == "resources":
            for key in ("serve_idle", "worker_idle", "serve_queued", "worker_queued"):
                need(r[key] and all(v > 0 for v in r[key]), f"resources: {key} = {r[key]}")
        elif name == "health":
            for x in r["runs"]:
                need(x["busy"] == z.busy and x["non2xx"] == 0, f"health: {x['busy']} of {z.busy} busy, {x['non2xx']} not 2xx")
            need(r["runs"], "health: no run")
        elif name == "scale":
            need(r["finished"] == z.history and r["scheduled"] == z.history, f"scale: populated {r['finished']} + {r['scheduled']}")
            for file in ("empty", "populated"):
                x = r[file]
                need(x["reads"] and x["enqueue"] and x["drain"], f"scale: {file}: a measurement is missing")
                for reads in x["reads"]:
                    for route in ("healthz", "task", "queues"):
                        need(reads[route]["n"] == z.reads, f"scale: {file}: {reads[route]['n']} GETs of {route}, asked {z.reads}")
                for e in x["enqueue"]:
                    enqueue_ok(f"scale {file} enqueue", e)
                for d in x["drain"]:
                    need(d["drained"] == z.drain, f"scale: {file}: drained {d['drained']}, asked {z.drain}")
        elif name == "postgres":
            n = z.pg_tasks
            for who in ("raw", "pgqueuer", "procrastinate"):
                asked = z.pg_procrastinate_tasks if who == "procrastinate" else n
                need(r[who] and all(x["done"] == asked and x["left"] == 0 for x in r[who]), f"postgres: {who} finished {[(x['done'], x['left']) for x in r[who]]}, asked {asked}")
            for k, runs in list(r["sluice"].items()) + [("held", r["held"]), ("wide", r["wide"]), ("prefetched", r["prefetched"])]:
                need(runs and all(x["succeeded"] == n and x["left"] == 0 for x in runs), f"postgres: Sluice {k}: {[(x['succeeded'], x['left']) for x in runs]}, asked {n}")
            for key in ("single", "batch"):
                for x in r["enqueue"][key]:
                    enqueue_ok(f"postgres enqueue {key}", x, z.batch_size if key == "batch" else 1)
            need(r["latency"]["tasks"] == z.pg_latency_tasks, f"postgres: latency ran {r['latency']['tasks']} of {z.pg_latency_tasks}")
            need(len(r["latency"]["wait_ms"]) == z.wait_tasks, f"postgres: {len(r['latency']['wait_ms'])} waits, asked {z.wait_tasks}")
        elif name == "console":
            need(r["tasks"] == z.console_tasks and len(r["pages"]) == len(Bench.CONSOLE_PAGES), f"console: {len(r['pages'])} pages timed")
            for page, v in r["pages"].items():
                need(len(v["page"]) == len(v["fragment"]) == len(r["fill_seconds"]) > 0, f"console: {page}: {v}")
        elif name == "store":
            for sync in ("full", "normal"):
                need(sum(l.startswith("| ") for l in r.get(sync, "").splitlines()) >= 4, f"store: no table for synchronous={sync}")
    if problems:
        raise SystemExit("tools/bench/run --smoke: the harness did not do what it claims:\n- " + "\n- ".join(problems))
    print(f"smoke checks passed: {', '.join(names)}", file=sys.stderr)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")) / 1024 / 1024
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}"


def versions():
    def run(argv, pattern):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            m = re.search(pattern, out.stdout + out.stderr)
            return m.group(1) if m else "?"
        except OSError:
            return "?"
    from importlib.metadata import version, PackageNotFoundError
    def py(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"
    swift = run(["swift", "--version"], r"Swift version (\S+)")
    sqlite = run(["dpkg-query", "-W", "-f", "${Version}", "libsqlite3-0"], r"(\S+)")
    ab = run(["ab", "-V"], r"Version (\S+)")
    wrk = run(["wrk", "-v"], r"wrk (\S+)")
    redis = run(["redis-server", "--version"], r"v=(\S+)")
    return (f"Swift {swift}, SQLite {sqlite}, Python {platform.python_version()}, FastAPI {py('fastapi')}, "
            f"uvicorn {py('uvicorn')}, AnyIO {py('anyio')}, Huey {py('huey')}, Celery {py('celery')}, Redis {redis}, ab {ab}, wrk {wrk}")


def main():
    ap = argparse.ArgumentParser(prog="tools/bench/run")
    ap.add_argument("--bin", required=True, help="directory holding sluice and sluice-bench-bare/-store")
    ap.add_argument("--mode", choices=MODES, default="full")
    ap.add_argument("--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="where results, plots and BENCHMARKS.md go")
    ap.add_argument("--command", default="tools/bench/run", help="the command line to record")
    ap.add_argument("--render", action="store_true", help="run nothing; render OUT/BENCHMARKS.md and plots from the results there")
    args = ap.parse_args()
    analysis = os.path.join(ROOT, "docs", "bench", "analysis.md") if os.path.abspath(args.out) == os.path.join(ROOT, "docs") else None
    if args.render:
        report(args.out, analysis)
        return
    # A parent may have blocked signals (a test runner does); children inherit the mask, and a peer
    # that never sees SIGTERM cannot be stopped gracefully.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
    out = args.out
    os.makedirs(os.path.join(out, "bench", "results"), exist_ok=True)
    bench = Bench(args)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": args.command,
            "repeats": args.repeats, "mode": args.mode, "machine": machine(), "versions": versions()}

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    try:
        for name in args.only or SCENARIOS:
            print(f"{name}…", file=sys.stderr, flush=True)
            data = getattr(bench, name.replace("-", "_"))()
            with open(os.path.join(out, "bench", "results", f"{name}.json"), "w") as f:
                json.dump({"meta": meta, "data": data}, f, indent=1)
    except KeyboardInterrupt:
        print("interrupted: stopping everything started", file=sys.stderr)
        sys.exit(130)
    except BaseException:
        print(f"failed; the logs of every process started are in {bench.work}", file=sys.stderr)
        raise
    finally:
        bench.procs.stop_all()
    shutil.rmtree(bench.work, ignore_errors=True)  # kept on failure: the logs of every process are there
    text = report(out, analysis)
    print(text)
    print(f"\nwritten to {out}", file=sys.stderr)
    if args.mode == "smoke":
        check_smoke(out, args.only or SCENARIOS, bench.sizes, text, meta)


if __name__ == "__main__":
    main()
