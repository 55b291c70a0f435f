#!/usr/bin/env python3
"""Drives and checks one run of tools/cluster/run (stdlib only).

Enqueues the tasks through the API host into a paused queue and resumes it, kills every process of
one worker host with SIGKILL once a fraction of them has succeeded, waits for the rest, then checks
every task as the API reports it against its claim history. The history comes from a trigger this script puts on the tasks table
before the first enqueue: the table keeps only a task's latest attempt, and "ran twice at once" is a
question about all of them. Prints a report; exits 1 when a check fails.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

# One row per claim and per move out of `running` (heartbeats change neither state nor token, so
# they are not recorded). clock_timestamp(): the moment of the change, not of its transaction's start.
AUDIT_SQL = """
CREATE TABLE cluster_audit (
    seq        bigserial   PRIMARY KEY,
    task       text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    old_state  text        NOT NULL,
    new_state  text        NOT NULL,
    owner      text,
    old_owner  text,
    token      bigint,
    old_token  bigint
);
CREATE FUNCTION cluster_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cluster_audit (task, old_state, new_state, owner, old_owner, token, old_token)
    VALUES (NEW.id, OLD.state, NEW.state, NEW.lease_owner, OLD.lease_owner, NEW.lease_token, OLD.lease_token);
    RETURN NULL;
END $$;
CREATE TRIGGER cluster_audit AFTER UPDATE ON tasks FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.lease_token IS DISTINCT FROM NEW.lease_token)
    EXECUTE FUNCTION cluster_audit();
"""

LEASE_EXPIRED = "lease expired"
# A statement a killed process sent just before it died may still run on the server a moment later.
IN_FLIGHT = 0.5
FINAL = ("succeeded", "failed", "cancelled")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--api", required=True, help="the API host's base URL")
    p.add_argument("--token", required=True)
    p.add_argument("--database", required=True, help="postgres:// URL, for psql")
    p.add_argument("--workers", required=True, help="worker host names, comma-separated")
    p.add_argument("--kill", required=True, help="the worker host to kill, as HOST=NETNS")
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--seconds", type=float, default=0.05, help="each sleep task's length")
    p.add_argument("--kill-at", type=float, default=0.4, help="fraction succeeded when the host is killed")
    p.add_argument("--timeout", type=float, default=120, help="seconds the queue may take to drain")
    p.add_argument("--log", action="append", default=[], help="a sluice log to search for stale outcomes")
    return p.parse_args()


class API:
    def __init__(self, base, token):
        self.base, self.token = base.rstrip("/"), token

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + self.token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)


def psql(url, sql):
    out = subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"check: psql failed: {out.stderr.strip()}")
    return out.stdout


def host_of(worker_id):
    """Worker ids are host:pid:random."""
    return worker_id.rsplit(":", 2)[0] if worker_id else None


def wait_ready(api, workers, deadline):
    """Until the API answers and every worker host has registered a pool."""
    seen = set()
    while time.time() < deadline:
        try:
            listed = api.call("GET", "/v1/workers", timeout=5)["workers"]
            seen = {w["host"] for w in listed if w["pools"]}
            if set(workers) <= seen:
                return listed
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    sys.exit(f"check: workers {sorted(set(workers) - seen)} did not register within the start-up bound")


def kill_every_process(netns):
    """SIGKILLs every process in the namespace until none is left; returns how many, when the first
    signal went and when the last process was gone (bounds on the moment the host died)."""
    killed, began = set(), None
    deadline = time.time() + 10
    while True:
        out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=True)
        pids = [int(p) for p in out.stdout.split()]
        if not pids:
            now = time.time()
            return len(killed), began or now, now
        began = began or time.time()
        if time.time() > deadline:
            sys.exit(f"check: processes {pids} of {netns} survived SIGKILL for 10 s")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def enqueue_all(api, n, seconds, errors, connections=2):
    """Enqueues tasks 0…n-1 in batches of 1000 over a few connections at once (the server decodes
    each batch on one core); returns their ids in order."""
    batches = list(range(0, n, 1000))
    ids = [None] * len(batches)

    def send(k):
        try:
            for b in range(k, len(batches), connections):
                body = [{"kind": "sleep", "args": {"seconds": seconds, "n": i}} for i in range(batches[b], min(n, batches[b] + 1000))]
                ids[b] = [t["id"] for t in api.call("POST", "/v1/tasks/batch", body, timeout=120)["tasks"]]
        except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
            errors.append(f"enqueue failed: {e}")

    threads = [threading.Thread(target=send, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [i for batch in ids if batch for i in batch]


def running_on(url, host):
    """Tasks the database has running under a lease of this host's processes."""
    return int(psql(url, f"SELECT count(*) FROM tasks WHERE state = 'running' AND lease_owner LIKE '{host}:%'"))


def all_tasks(api):
    tasks, cursor = {}, None
    while True:
        page = api.call("GET", "/v1/tasks?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        for t in page["tasks"]:
            tasks[t["id"]] = t
        cursor = page["next_cursor"]
        if not cursor:
            return tasks


def claim_history(url):
    """Per task: its claims, oldest first, each [owner, start, end, how it ended], plus moves that
    took a running task from one owner straight to another (a second claim over a live lease)."""
    claims, overclaims, successes = {}, {}, {}
    rows = psql(url, "SELECT task, extract(epoch FROM at), old_state, new_state, owner, old_owner, token, old_token "
                     "FROM cluster_audit ORDER BY seq")
    for line in rows.splitlines():
        task, at, old, new, owner, old_owner, token, old_token = line.split("\t")
        at = float(at)
        mine = claims.setdefault(task, [])
        if old == "running" and mine and mine[-1][2] is None and (new != "running" or token != old_token):
            mine[-1][2], mine[-1][3] = at, new
        if new == "running" and (old != "running" or token != old_token):
            if old == "running":
                overclaims[task] = overclaims.get(task, 0) + 1
            mine.append([owner, at, None, None])
        if new == "succeeded":
            successes[task] = successes.get(task, 0) + 1
    return claims, overclaims, successes


def stale_outcomes(logs):
    """Outcomes a worker computed after its lease had passed to another: the task ran twice."""
    count = 0
    for path in logs:
        try:
            with open(path, errors="replace") as f:
                count += sum("dropped a stale outcome" in line for line in f)
        except FileNotFoundError:
            pass
    return count


def main():
    a = parse_args()
    api = API(a.api, a.token)
    workers = a.workers.split(",")
    kill_host, kill_ns = a.kill.split("=", 1)
    t0 = time.time()
    listed = wait_ready(api, workers, t0 + 60)
    leader = next((host_of(w["id"]) for w in listed if w.get("leader")), None)
    psql(a.database, AUDIT_SQL)

    # The whole backlog is stored before any host may claim it, so that the hosts are busy when
    # one is killed: an enqueue slower than the workers would leave them idle, waiting for it.
    errors = []
    api.call("POST", "/v1/queues/default/pause")
    began_enqueue = time.time()
    ids = enqueue_all(api, a.tasks, a.seconds, errors)
    enqueued_in = time.time() - began_enqueue
    api.call("POST", "/v1/queues/default/resume")
    start = time.time()
    killed = None  # (processes, succeeded then, time the kill began, time all were gone, leader then)
    deadline = start + a.timeout
    finished = succeeded = 0
    while time.time() < deadline and not errors:
        counts = {}
        for q in api.call("GET", "/v1/queues")["durable"]:
            for state, n in q["counts"].items():
                counts[state] = counts.get(state, 0) + n
        succeeded, finished = counts.get("succeeded", 0), sum(counts.get(s, 0) for s in FINAL)
        # Only while the host holds running tasks: a kill between its waves of claims would test nothing.
        if killed is None and succeeded >= a.kill_at * a.tasks and running_on(a.database, kill_host) > 0:
            leader = next((host_of(w["id"]) for w in api.call("GET", "/v1/workers")["workers"] if w.get("leader")), None)
            processes, began, gone = kill_every_process(kill_ns)
            killed = (processes, succeeded, began, gone, leader)
        if finished >= a.tasks:
            break
        time.sleep(0.2)
    elapsed = time.time() - start

    failures = list(errors)
    if finished < a.tasks and not errors:
        failures.append(f"timed out after {a.timeout:.0f} s with {finished} of {a.tasks} tasks finished")
    if killed is None:
        failures.append(f"{kill_host} was never killed ({succeeded} succeeded)")
        killed = (0, succeeded, float("inf"), float("inf"), leader)
    processes, succeeded_at_kill, kill_began, kill_done, leader_at_kill = killed

    tasks = all_tasks(api)
    claims, overclaims, successes = claim_history(a.database)

    # Every enqueued task is listed, once, with the args it was given, and nothing else is there.
    lost = [i for i in ids if i not in tasks or tasks[i]["state"] != "succeeded"]
    unknown = set(tasks) - set(ids)
    if not errors and (len(ids) != a.tasks or len(set(ids)) != len(ids)):
        failures.append(f"enqueue returned {len(ids)} ids ({len(set(ids))} distinct) for {a.tasks} tasks")
    if unknown:
        failures.append(f"{len(unknown)} tasks listed that were never enqueued")

    twice, wrong, reruns, rescue_delays, earlier_hosts = [], [], [], [], set()
    spread = {h: 0 for h in workers}
    for i, tid in enumerate(ids):
        t = tasks.get(tid)
        if t is None or t["state"] != "succeeded":
            continue
        mine = claims.get(tid, [])
        problems = []
        if t["args"] != {"seconds": a.seconds, "n": i} or t["result"] != {"slept": a.seconds}:
            problems.append(f"args {t['args']} result {t['result']}")
        if successes.get(tid, 0) != 1:
            problems.append(f"succeeded {successes.get(tid, 0)} times")
        if t["attempt"] != len(mine) or not mine:
            problems.append(f"attempt {t['attempt']} but {len(mine)} claims")
        errs = t["attempt_errors"]
        if len(errs) != max(0, len(mine) - 1) or any(not e["message"].startswith(LEASE_EXPIRED) for e in errs):
            problems.append(f"attempt_errors {errs}")
        if not (t["created_at"] <= t["started_at"] <= t["finished_at"]):
            problems.append(f"times created {t['created_at']} started {t['started_at']} finished {t['finished_at']}")
        if mine:
            owner, began, ended, how = mine[-1]
            if owner != t["worker"] or how != "succeeded":
                problems.append(f"last claim by {owner} ended {how}, task says worker {t['worker']}")
            if host_of(owner) == kill_host and ended is not None and ended > kill_done + IN_FLIGHT:
                problems.append(f"succeeded on {kill_host} after it was killed")
            if host_of(owner) in spread:
                spread[host_of(owner)] += 1
        # Earlier attempts: only ones the killed host held when it died, each rescued after it was
        # gone (its lease expired), and each over before the next began.
        overlap = []
        if overclaims.get(tid):
            overlap.append(f"claimed {overclaims[tid]} times over a live lease")
        for (owner, began, ended, how), nxt in zip(mine, mine[1:]):
            earlier_hosts.add(host_of(owner))
            if host_of(owner) != kill_host or how != "queued":
                overlap.append(f"attempt by {owner} ended {how} and was run again")
            elif ended < kill_done:
                overlap.append(f"rescued from {owner} {kill_done - ended:.3f} s before its host was gone")
            else:
                rescue_delays.append(ended - kill_done)
            if ended is None or nxt[1] < ended or nxt[1] < kill_done:
                overlap.append(f"attempt by {nxt[0]} began before the one by {owner} ended")
        if len(mine) > 1:
            reruns.append(tid)
        if overlap:
            twice.append((tid, overlap))
        if problems:
            wrong.append((tid, problems))

    # The kill must have landed on running work, or the run proved nothing about rescue: the
    # claims the killed host held then are the ones that did not end in success. Each must have
    # been rescued, and have begun before the host was gone.
    dead_claims = [(tid, began, how) for tid, mine in claims.items() for owner, began, ended, how in mine
                   if host_of(owner) == kill_host and how != "succeeded"]
    running_at_kill = sum(1 for tid, began, how in dead_claims if how == "queued")
    for tid, began, how in dead_claims:
        if how != "queued" or began > kill_done + IN_FLIGHT:
            wrong.append((tid, [f"a claim by {kill_host} began {began - kill_began:+.3f} s after the kill and ended {how}"]))
    stale = stale_outcomes(a.log)
    if lost:
        failures.append(f"{len(lost)} tasks lost or not succeeded, e.g. {lost[0]}: {tasks.get(lost[0], {}).get('state', 'missing')}")
    if twice:
        failures.append(f"{len(twice)} tasks ran twice at once, e.g. {twice[0][0]}: {'; '.join(twice[0][1])}")
    if stale:
        failures.append(f"{stale} outcomes were dropped as stale: a live worker ran a task whose lease another held")
    if wrong:
        failures.append(f"{len(wrong)} tasks in a wrong final state, e.g. {wrong[0][0]}: {'; '.join(wrong[0][1])}")
    if running_at_kill == 0:
        failures.append(f"no task was running on {kill_host} when it was killed: nothing to rescue")
    elif len(reruns) != running_at_kill:
        failures.append(f"{running_at_kill} tasks were running on {kill_host} when it was killed, {len(reruns)} were run again")

    done = max(1, sum(spread.values()))
    print(f"cluster: {a.tasks} sleep tasks of {a.seconds} s through {a.api}; worker hosts {', '.join(workers)}")
    if kill_began == float("inf"):
        print(f"  killed             nothing: {kill_host} was never killed")
    else:
        print(f"  killed             {kill_host} at {100 * succeeded_at_kill / a.tasks:.0f} % succeeded: {processes} process{'es' if processes != 1 else ''},"
              f" {running_at_kill} tasks running there; it {'was' if leader_at_kill == kill_host else 'was not'} the maintenance leader")
    print(f"  tasks              {len(ids)}")
    print(f"  succeeded          {len(ids) - len(lost)}")
    print(f"  lost               {len(lost)}")
    print(f"  ran twice at once  {len(twice) + stale}")
    delays = f", rescued {min(rescue_delays):.1f}–{max(rescue_delays):.1f} s after the kill" if rescue_delays else ""
    print(f"  reruns             {len(reruns)} (earlier attempts on {', '.join(sorted(earlier_hosts)) or 'no host'}{delays})")
    print(f"  wrong state        {len(wrong)}")
    print("  spread             " + "   ".join(f"{h} {n} ({100 * n / done:.1f} %)" for h, n in spread.items()))
    print(f"  elapsed            {elapsed:.1f} s from resuming the queue to the last task ({a.tasks / elapsed:.0f} tasks/s),"
          f" after {enqueued_in:.1f} s enqueueing into the paused queue")
    for f in failures:
        print(f"FAILED: {f}")
    if not failures:
        print("PASSED: none lost, none ran twice at once, every final state right")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
