"""The postgres scenario of tools/bench/run (issue 11's figures): Sluice on PostgreSQL beside
PostgreSQL's own SKIP LOCKED claim+complete limit and the peers pgqueuer and procrastinate, all on
one throwaway server that this scenario starts (tools/dev/postgres) and stops, in the same run.

Every measurement gets a database of its own. Sluice's drains clone one template database that
`sluice serve --no-pool` filled through `POST /v1/tasks/batch` once per run (CREATE DATABASE …
TEMPLATE), so each drain starts from the same N queued rows without paying the fill again.
Within a repeat the systems run one after another (raw, pgqueuer, procrastinate, Sluice with 1, 2
and 4 workers), so every repeat compares them under the same background load.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PEERS = os.path.join(ROOT, "tools", "bench", "peers")
DEV_POSTGRES = os.path.join(ROOT, "tools", "dev", "postgres")
# What tools/dev/postgres starts with, and what this scenario adds (recorded in the results).
SERVER_SETTINGS = ("fsync=off, synchronous_commit=off, full_page_writes=off (tools/dev/postgres: a throwaway "
                   "server), max_connections=400, shared_preload_libraries=pg_stat_statements, "
                   "other settings PostgreSQL's defaults (shared_buffers 128 MB)")
WORKER_CONCURRENCY = 64
WIDE_CONCURRENCY = 256  # one more 1-worker drain with this many slots: a pool refills only its free slots
PREFETCH = 192  # and one at the usual 64 slots with this prefetch: claims as large as the wide run's
UNFINISHED = "('scheduled', 'queued', 'running', 'retrying')"


class PgServer:
    """A throwaway server from tools/dev/postgres, with pg_stat_statements loaded."""

    def __init__(self):
        out = subprocess.run([DEV_POSTGRES, "start"], capture_output=True, text=True, timeout=120, check=True).stdout
        env = dict(re.findall(r"^export (\w+)=(\S+)$", out, re.M))
        self.admin_url, self.dir = env["SLUICE_TEST_DATABASE_URL"], env["SLUICE_TEST_POSTGRES_DIR"]
        self.base = self.admin_url.rsplit("/", 1)[0]
        self.made = 0
        try:
            self.sql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            self.restart()
            self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.version = self.sql("SHOW server_version")[0][0]
        except BaseException:
            self.stop()
            raise

    def restart(self):
        """pg_ctl restart, as the cluster's owner (root never runs the server); the options of the start stay."""
        import pwd
        import shutil
        initdb = shutil.which("initdb")
        bindir = os.path.dirname(os.path.realpath(initdb)) if initdb else sorted(
            d for d in (f"/usr/lib/postgresql/{v}/bin" for v in os.listdir("/usr/lib/postgresql")) if os.path.isdir(d))[-1]
        argv = [os.path.join(bindir, "pg_ctl"), "-D", f"{self.dir}/data", "-l", f"{self.dir}/server.log", "-m", "fast", "-w", "-t", "60", "restart"]
        if os.getuid() == 0:
            argv = ["runuser", "-u", pwd.getpwuid(os.stat(self.dir).st_uid).pw_name, "--"] + argv
        subprocess.run(argv, check=True, timeout=120, stdout=subprocess.DEVNULL)

    def sql(self, text, *params, db=None):
        import psycopg
        with psycopg.connect(self.url(db) if db else self.admin_url, autocommit=True) as conn:
            cur = conn.execute(text, params or None)
            return cur.fetchall() if cur.description else []

    def url(self, db):
        return f"{self.base}/{db}"

    def create(self, prefix, template=None):
        self.made += 1
        name = f"{prefix}_{self.made}"
        self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name

    def drop(self, name):
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def top_statements(self, limit=12):
        rows = self.sql("""SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 4), rows,
                                  regexp_replace(query, '\\s+', ' ', 'g')
                           FROM pg_stat_statements WHERE query NOT LIKE %s AND query NOT LIKE %s
                           ORDER BY total_exec_time DESC LIMIT %s""", "%pg_stat_statements%", "%FROM queue_counts WHERE state IN%", limit)
        return [{"calls": r[0], "total_ms": float(r[1]), "mean_ms": float(r[2]), "rows": r[3], "query": r[4][:400]} for r in rows]

    def cpu_seconds(self):
        """CPU seconds (user + system) of the server's live processes: the postmaster's children."""
        with open(f"{self.dir}/data/postmaster.pid") as f:
            postmaster = int(f.readline())
        total = 0
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == postmaster:
                    total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self):
        subprocess.run([DEV_POSTGRES, "stop", self.dir], timeout=120)


def cpu_of(pid):
    """CPU seconds (user + system) of a live process, its threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fdatasync_ms(directory, count=100):
    """The median time of one fdatasync of a 4 KB write in directory, in ms: what a commit that
    waits for this disk would pay."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for i in range(count):
            os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    return sorted(times)[count // 2]


def run_postgres(bench):
    """The scenario; bench is tools/bench/bench.py's Bench (its processes, sizes, binaries)."""
    z = bench.sizes
    pg = PgServer()
    bench.say(f"postgres: server {pg.version} at {pg.base.split('@')[1]}")
    out = {"server": f"PostgreSQL {pg.version}", "settings": SERVER_SETTINGS, "tasks": z.pg_tasks,
           "procrastinate_tasks": z.pg_procrastinate_tasks, "worker_concurrency": WORKER_CONCURRENCY,
           "raw": [], "pgqueuer": [], "procrastinate": [], "sluice": {"1": [], "2": [], "4": []}, "held": [],
           "wide_concurrency": WIDE_CONCURRENCY, "wide": [], "prefetch": PREFETCH, "prefetched": [],
           "fill": [], "enqueue": {}, "latency": {}, "statements": {}, "versions": peer_versions(),
           "load": [os.getloadavg()[0]], "fdatasync_ms": fdatasync_ms(bench.work)}
    try:
        template = fill_template(bench, pg, z.pg_tasks, out)
        for rep in range(bench.repeats):
            for peer, n in (("raw", z.pg_tasks), ("pgqueuer", z.pg_tasks), ("procrastinate", z.pg_procrastinate_tasks)):
                r = peer_drain(bench, pg, peer, n)
                out[peer].append(r)
                bench.say(f"postgres: {peer}: {r['tasks_per_s']:.0f}/s ({r['done']} of {n})")
            out["load"].append(os.getloadavg()[0])
            for processes in (1, 2, 4):
                profile = rep == 0 and processes == 1
                r = sluice_drain(bench, pg, template, processes, profile=profile)
                if profile:
                    out["statements"]["drain_1_worker"] = r.pop("statements")
                out["sluice"][str(processes)].append(r)
                bench.say(f"postgres: sluice {processes} worker(s): {r['tasks_per_s']:.0f}/s ({r['succeeded']} of {z.pg_tasks})")
            r = sluice_drain(bench, pg, template, 1, concurrency=WIDE_CONCURRENCY)
            out["wide"].append(r)
            bench.say(f"postgres: sluice 1 worker --concurrency {WIDE_CONCURRENCY}: {r['tasks_per_s']:.0f}/s ({r['succeeded']} of {z.pg_tasks})")
            r = sluice_drain(bench, pg, template, 1, prefetch=PREFETCH)
            out["prefetched"].append(r)
            bench.say(f"postgres: sluice 1 worker --prefetch {PREFETCH}: {r['tasks_per_s']:.0f}/s ({r['succeeded']} of {z.pg_tasks})")
        r = sluice_drain(bench, pg, template, 1, held=True)
        out["held"].append(r)
        bench.say(f"postgres: sluice 1 worker, snapshot held: {r['tasks_per_s']:.0f}/s, dead rows {r.get('dead_rows')}")
        http_enqueue(bench, pg, out)
        latency(bench, pg, out)
        out["load"].append(os.getloadavg()[0])
    finally:
        bench.procs.stop_all()
        pg.stop()
    return out


def peer_versions():
    from importlib.metadata import version
    return ", ".join(f"{name} {version(name)}" for name in ("pgqueuer", "procrastinate", "asyncpg", "psycopg"))


def fill_template(bench, pg, n, out):
    """Fills a database with n queued echo tasks through serve --no-pool's batch endpoint (1,000 a
    request, one client): the template of every Sluice drain. Its rate is a figure too."""
    from bench import Client
    db = pg.create("sluice_template")
    s = serve(bench, pg, db)
    client = Client(s.port)
    start = time.monotonic()
    for first in range(0, n, 1000):
        client.call("POST", "/v1/tasks/batch", [{"kind": "echo"}] * min(1000, n - first))
    seconds = time.monotonic() - start
    client.close()
    bench.procs.stop(s)
    stored = pg.sql("SELECT count(*) FROM tasks WHERE state = 'queued'", db=db)[0][0]
    if stored != n:
        raise SystemExit(f"postgres: the template holds {stored} queued tasks, {n} were enqueued")
    pg.sql("VACUUM ANALYZE tasks", db=db)
    out["fill"].append({"tasks_per_s": n / seconds, "stored": stored})
    bench.say(f"postgres: filled the template, {n / seconds:.0f} tasks/s through POST /v1/tasks/batch")
    return db


def serve(bench, pg, db, *flags):
    from bench import free_port, wait_tcp
    port = free_port()
    p = bench.procs.start("serve-pg", [bench.sluice, "serve", "--no-pool", "--port", str(port), "--database", pg.url(db),
                                       "--log-level", "error", *flags])
    wait_tcp(bench.procs, p, port)
    p.port, p.db = port, db
    return p


def peer_drain(bench, pg, peer, n):
    db = pg.create(peer)
    try:
        done = subprocess.run([sys.executable, os.path.join(PEERS, "pg_peers.py"), peer, pg.url(db), str(n)],
                              capture_output=True, text=True, timeout=900, cwd=PEERS)
        lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"postgres: {peer} exited with {done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}")
        r = json.loads(lines[-1])
    finally:
        pg.drop(db)
    r["tasks_per_s"] = n / r["seconds"]
    return r


def sluice_drain(bench, pg, template, processes, held=False, profile=False, concurrency=WORKER_CONCURRENCY, prefetch=0):
    """Drains a clone of the template with `processes` workers: tasks/s from spawning them to the last
    finished_at. With held, another connection keeps a transaction with an xid open for the whole
    drain (what a long report or a forgotten BEGIN does), so no dead row can be vacuumed or pruned."""
    import psycopg
    db = pg.create("sluice_drain", template=template)
    n = pg.sql("SELECT count(*) FROM tasks WHERE state = 'queued'", db=db)[0][0]
    holder = None
    try:
        if held:
            holder = psycopg.connect(pg.url(db))
            holder.execute("SELECT txid_current()")  # BEGIN is implicit: the transaction stays open
        if profile:
            pg.sql("SELECT pg_stat_statements_reset()")
        server_cpu = pg.cpu_seconds()
        start = time.time()
        workers = [bench.procs.start("worker-pg", [bench.sluice, "worker", "--database", pg.url(db), "--concurrency",
                                                   str(concurrency), "--prefetch", str(prefetch), "--log-level", "error"])
                   for _ in range(processes)]
        wait_drained(bench, pg, db, workers)
        cpu = {"workers": sum(cpu_of(w.pid) for w in workers), "server": pg.cpu_seconds() - server_cpu}
        stats = pg.top_statements() if profile else None
        for w in workers:
            bench.procs.stop(w)
        row = pg.sql(f"""SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state IN {UNFINISHED}),
                                count(*) FILTER (WHERE attempt > 1), extract(epoch FROM max(finished_at))
                         FROM tasks""", db=db)[0]
        dead = pg.sql("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'tasks'", db=db)[0][0] if held else None
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
        pg.drop(db)
    r = {"tasks_per_s": n / (float(row[3]) - start), "succeeded": row[0], "left": row[1], "retried": row[2],
         "seconds": float(row[3]) - start, "cpu": cpu}
    if held:
        r["dead_rows"] = dead
    if stats is not None:
        r["statements"] = stats
    return r


def wait_drained(bench, pg, db, procs, seconds=600):
    """Polls the counters that GET /v1/queues reads until no task is unfinished."""
    deadline = time.monotonic() + seconds
    while True:
        left = pg.sql(f"SELECT coalesce(sum(n), 0) FROM queue_counts WHERE state IN {UNFINISHED}", db=db)[0][0]
        if left == 0:
            return
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"{p.name} exited with {p.returncode}:\n{bench.procs.tail(p)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"postgres: drain did not finish in {seconds} s ({left} unfinished)")
        time.sleep(0.1)  # the finish time comes from finished_at, not from this poll


def http_enqueue(bench, pg, out):
    """wrk -c50 on serve --no-pool over PostgreSQL, one task a request and 100 a request; every
    acknowledged task must be stored."""
    from bench import run_wrk
    z = bench.sizes
    out["enqueue"] = {"wrk": f"wrk -t2 -c50 -d{z.wrk_seconds}s", "single": [], "batch": [], "batch_size": z.batch_size}
    for _ in range(bench.repeats):
        for key, path, body, per in (("single", "/v1/tasks", json.dumps({"kind": "echo"}), 1),
                                     ("batch", "/v1/tasks/batch", json.dumps([{"kind": "echo"}] * z.batch_size), z.batch_size)):
            db = pg.create("sluice_enqueue")
            s = serve(bench, pg, db)
            profile = f"enqueue_{key}" not in out["statements"]
            if profile:
                pg.sql("SELECT pg_stat_statements_reset()")
            r = run_wrk(f"http://127.0.0.1:{s.port}{path}", z.wrk_seconds, 50, body=body, lua_dir=bench.work)
            if profile:
                out["statements"][f"enqueue_{key}"] = pg.top_statements(6)
            bench.procs.stop(s)
            r["tasks_per_s"] = r["rps"] * per
            r["stored"] = pg.sql("SELECT count(*) FROM tasks", db=db)[0][0]
            acked = (r["requests"] - r["non2xx"]) * per
            pg.drop(db)
            if r["stored"] < acked:
                raise SystemExit(f"postgres: enqueue {key}: {acked} acknowledged but {r['stored']} stored")
            out["enqueue"][key].append(r)
            bench.say(f"postgres: HTTP enqueue {key}: {r['tasks_per_s']:.0f} tasks/s")


def latency(bench, pg, out):
    """One client posts an echo task, waits until it has finished, pauses, and posts the next: the
    worker is idle at every enqueue. Times are started_at − created_at as PostgreSQL recorded them."""
    from bench import Client
    z = bench.sizes
    db = pg.create("sluice_latency")
    s = serve(bench, pg, db)
    w = bench.procs.start("worker-pg", [bench.sluice, "worker", "--database", pg.url(db), "--concurrency", "16",
                                        "--log-level", "error"])
    time.sleep(1.5)  # registered, its polling backed off
    client = Client(s.port)
    for i in range(z.pg_latency_tasks):
        task = client.call("POST", "/v1/tasks", {"kind": "echo", "args": {"n": i}})
        deadline = time.monotonic() + 10
        while client.call("GET", f"/v1/tasks/{task['id']}")["state"] != "succeeded":
            if time.monotonic() > deadline or w.poll() is not None:
                raise SystemExit(f"postgres: latency task {task['id']} did not finish:\n{bench.procs.tail(w)}")
            time.sleep(0.002)
        time.sleep(0.05 + (i % 5) * 0.02)  # idle gaps of 50 to 130 ms, off any polling period
    rows = pg.sql("""SELECT extract(epoch FROM started_at - created_at) * 1000, extract(epoch FROM finished_at - created_at) * 1000
                     FROM tasks WHERE state = 'succeeded'""", db=db)
    from bench import wait_round_trips
    waits = wait_round_trips(client, z.wait_tasks)
    client.close()
    bench.procs.stop(w)
    bench.procs.stop(s)
    pg.drop(db)
    out["latency"] = {"tasks": len(rows), "asked": z.pg_latency_tasks, "start_ms": [float(r[0]) for r in rows],
                      "finish_ms": [float(r[1]) for r in rows], "wait_ms": waits}
    from bench import percentile
    bench.say(f"postgres: latency start p50 {percentile(out['latency']['start_ms'], 0.5):.2f} ms")
