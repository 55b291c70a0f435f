#!/usr/bin/env python3
"""SIGKILL anywhere: a server and two `sluice worker`s share one database while a driver enqueues
tasks and kills a random one of them with SIGKILL every 0.5-2 s, restarting it. Then everything
drains and the database is checked: every task final, none lost, every re-run explained by a lease a
kill cut. Loopback only, bounded in count and time, stops everything it started.

    tools/soak/kill-soak.py [--tasks 10000] [--seconds 60] [--sluice PATH]
"""
import argparse, json, os, random, signal, socket, sqlite3, subprocess, sys, tempfile, time, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--tasks", type=int, default=10_000)
ap.add_argument("--seconds", type=float, default=60)
ap.add_argument("--sluice", default=os.path.join(os.path.dirname(__file__), "../../.build-release/release/sluice"))
args = ap.parse_args()
sluice = os.path.abspath(args.sluice)
if not os.access(sluice, os.X_OK):
    sys.exit(f"build it first: swift build -c release --static-swift-stdlib --scratch-path .build-release --product sluice ({sluice})")

work = tempfile.mkdtemp(prefix="sluice-soak-")
db, log, runs = f"{work}/soak.db", f"{work}/soak.log", f"{work}/executions"
port = (lambda s: (s.bind(("127.0.0.1", 0)), s.getsockname()[1], s.close())[1])(socket.socket())
base = f"http://127.0.0.1:{port}"
common = ["--db", db, "--lease", "3", "--allow-exec", "/bin/sh", "--log-level", "warning"]
roles = {
    "server": [sluice, "serve", "--port", str(port), "--concurrency", "8"] + common,
    "worker-1": [sluice, "worker", "--concurrency", "8"] + common,
    "worker-2": [sluice, "worker", "--concurrency", "8"] + common,
}
procs, kills = {}, []
logfile = open(log, "a")

def start(role):
    procs[role] = subprocess.Popen(roles[role], stdout=logfile, stderr=logfile)

def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=10))

def up():
    try: urllib.request.urlopen(base + "/healthz", timeout=1).read(); return True
    except Exception: return False

def task(n):
    r = n % 10
    if r < 6:   # records each execution, sleeping 0-20 ms
        return {"kind": "exec", "args": {"argv": ["/bin/sh", "-c", f"sleep 0.0{r * 3}; echo {n} >> {runs}"]}, "max_attempts": 10}
    if r < 8:
        return {"kind": "echo", "args": {"n": n}, "max_attempts": 10}
    return {"kind": "fail", "args": {"times": 2, "message": f"planned {n}"}, "max_attempts": 10}

try:
    for role in roles: start(role)
    deadline = time.time() + 20
    while not up():
        if time.time() > deadline: sys.exit("server did not start")
        time.sleep(0.1)
    acked, n, next_kill = set(), 0, time.time() + random.uniform(0.5, 2)
    end = time.time() + args.seconds
    while time.time() < end and (n < args.tasks or time.time() < end):
        if n < args.tasks:
            batch = [task(i) for i in range(n, min(n + 50, args.tasks))]
            try:
                answer = post("/v1/tasks/batch", batch)
                acked.update((t["id"], t["args"].get("n", t["args"].get("argv", [""])[-1])) for t in answer["tasks"])
                n += len(batch)
            except Exception:
                time.sleep(0.05)  # the server may be the one just killed
        else:
            time.sleep(0.05)
        if time.time() >= next_kill:
            victim = random.choice(list(roles))
            procs[victim].send_signal(signal.SIGKILL); procs[victim].wait()
            kills.append((round(time.time(), 3), victim))
            start(victim)
            next_kill = time.time() + random.uniform(0.5, 2)
            if victim == "server":
                while not up(): time.sleep(0.05)
    # Drain: no more kills; wait until every task is final (bounded).
    drain_end = time.time() + 120
    while time.time() < drain_end:
        with sqlite3.connect(db) as c:
            left = c.execute("SELECT count(*) FROM tasks WHERE state NOT IN ('succeeded','failed','cancelled')").fetchone()[0]
        if left == 0: break
        time.sleep(0.5)
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT id, kind, state, attempt, attempt_errors FROM tasks").fetchall()
        args_of = dict(c.execute("SELECT id, args FROM tasks").fetchall())
    states = {}
    for _, _, state, _, _ in rows: states[state] = states.get(state, 0) + 1
    ids = {r[0] for r in rows}
    lost = [i for i, _ in acked if i not in ids]
    executions = {}
    if os.path.exists(runs):
        for line in open(runs):
            executions[line.strip()] = executions.get(line.strip(), 0) + 1
    # A task that ran more than once must show a lease cut by a kill for each extra run.
    unexplained, reruns = [], 0
    for task_id, kind, state, attempt, errors in rows:
        if kind != "exec": continue
        n_text = json.loads(args_of[task_id])["argv"][-1].split("echo ")[1].split(" ")[0]
        ran = executions.get(n_text, 0)
        cut = sum(1 for e in json.loads(errors) if e["message"].startswith("lease expired"))
        if ran > 1:
            reruns += ran - 1
            if ran - 1 > cut: unexplained.append((task_id, ran, cut))
        if state == "succeeded" and ran == 0: unexplained.append((task_id, ran, cut))
    report = {
        "tasks_enqueued": len(acked), "tasks_in_db": len(rows), "lost": len(lost), "states": states,
        "kills": len(kills), "kills_by_role": {r: sum(1 for _, v in kills if v == r) for r in roles},
        "exec_reruns": reruns, "reruns_not_explained_by_a_cut_lease": len(unexplained),
        "not_final": sum(v for k, v in states.items() if k not in ("succeeded", "failed", "cancelled")),
    }
    print(json.dumps(report, indent=2))
    ok = report["lost"] == 0 and report["not_final"] == 0 and not unexplained
    print("soak: PASS" if ok else f"soak: FAIL {unexplained[:5]}")
    sys.exit(0 if ok else 1)
finally:
    for p in procs.values():
        if p.poll() is None: p.kill(); p.wait()
    logfile.close()
