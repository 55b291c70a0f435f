"""Worker side: Python functions run in real `sluice-worker` processes against the real server."""
from __future__ import annotations

import signal
import threading
import time
from typing import Any, List, Tuple
from datetime import datetime, timezone

import httpx
import pytest

from support import WorkerProcess, until
from sluice import Client, SluiceError
from sluice.pool import PoolSpec


def test_sync_and_async_functions_run_and_show_as_a_pool(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:4")
    assert client.run("add", {"a": 1, "b": 2}, queue="py", timeout=20) == 3
    assert client.run("add_async", {"a": 2, "b": 3}, queue="py", timeout=20) == 5
    pool = next(p for p in client.pools() if p["name"] == "py")
    assert pool["target"] == 4 and pool["queues"] == ["py"]
    # The figures come with the next heartbeat, within a second.
    until(lambda: next(p for p in client.pools() if p["name"] == "py")["processed"] == 2, 3, "2 processed in GET /v1/pools")
    worker = next(w for w in client.workers() if w["pools"] and w["pools"][0]["name"] == "py")
    assert worker["this_server"] is False


def test_exceptions_fail_with_their_traceback_and_retry_or_discard(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:4")
    boom = client.status(client.enqueue("boom", queue="py", max_attempts=1).id, wait=20)
    assert boom.state == "failed" and "Traceback" in boom.error and "ZeroDivisionError" in boom.error
    later = client.enqueue("later", queue="py", max_attempts=3)
    until(lambda: client.status(later.id).state == "retrying", 20, "Retry(after=60) leaves the task retrying")
    retrying = client.status(later.id)
    run_at = datetime.fromisoformat(retrying.attempt_errors[0].at.replace("Z", "+00:00"))
    assert "421" in retrying.attempt_errors[0].message and retrying.attempt == 1
    assert (datetime.fromisoformat(httpx.get(f"{client.url}/v1/tasks/{later.id}").json()["run_at"].replace("Z", "+00:00")) - run_at).total_seconds() > 50
    discarded = client.status(client.enqueue("discard", queue="py", max_attempts=5).id, wait=20)
    assert discarded.state == "failed" and discarded.attempt == 1 and "corrupt" in discarded.error
    not_json = client.status(client.enqueue("not_json", queue="py", max_attempts=5).id, wait=20)
    assert not_json.state == "failed" and "not JSON" in not_json.error


def test_a_resize_reaches_the_python_pool_within_a_second(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:5")
    ids = [client.enqueue("hold", {"seconds": 2}, queue="py").id for _ in range(60)]
    until(lambda: next(p for p in client.pools() if p["name"] == "py")["busy"] == 5, 10, "5 running")
    resized_at = time.time()
    client.resize("py", 20)
    results = [client.result(i, timeout=60) for i in ids]
    high = max(r["high_water"] for r in results)
    reached = min(r["reached_at"] for r in results if r["high_water"] == high) - resized_at
    # Measured inside the task functions: the heartbeat (every second) brings the change, the claimer fills the slots.
    assert high == 20 and reached < 1.5, f"the pool ran {high} at once, {reached:.2f} s after the resize"
    assert next(p for p in client.pools() if p["name"] == "py")["target"] == 20


def test_a_cancel_reaches_a_running_function(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:2")
    for kind in ("until_cancelled", "until_cancelled_async"):
        task = client.enqueue(kind, queue="py")
        until(lambda: client.status(task.id).state == "running", 10, f"{kind} running")
        asked = time.monotonic()
        client.cancel(task.id)
        done = client.status(task.id, wait=10)
        assert done.state == "cancelled" and time.monotonic() - asked < 5, f"{kind}: {done}"


def test_sigterm_finishes_running_tasks_and_hands_back_the_rest(client: Client, start_worker) -> None:
    worker = start_worker("--pool", "py=py:2", "--grace", "20")
    ids = [client.enqueue("hold", {"seconds": 2}, queue="py").id for _ in range(6)]
    until(lambda: sum(client.status(i).state == "running" for i in ids) == 2, 10, "2 running")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()
    states = [client.status(i).state for i in ids]
    assert states.count("succeeded") == 2 and states.count("queued") == 4, states
    start_worker("--pool", "py=py:4")
    assert all(client.status(i, wait=20).state == "succeeded" for i in ids)


def test_prefetch_holds_tasks_beyond_the_slots_runs_no_more_at_once_and_hands_them_back(client: Client, start_worker) -> None:
    worker = start_worker("--pool", "py=py:2", "--prefetch", "3", "--grace", "20")
    ids = [client.enqueue("hold", {"seconds": 3}, queue="py").id for _ in range(8)]
    # Two slots and three tasks waiting for them: five leases, the rest still queued.
    until(lambda: [client.status(i).state for i in ids].count("running") == 5, 10, "5 tasks claimed")
    until(lambda: next(p for p in client.pools() if p["name"] == "py")["busy"] == 2, 5, "2 busy")
    states = [client.status(i).state for i in ids]
    assert states.count("running") == 5 and states.count("queued") == 3, states
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()
    done = [client.status(i) for i in ids]
    assert [t.state for t in done].count("succeeded") == 2 and [t.state for t in done].count("queued") == 6, done
    # What ran, ran two at a time.
    assert max(t.result["high_water"] for t in done if t.state == "succeeded") == 2
    start_worker("--pool", "py=py:8")
    assert all(client.status(i, wait=20).state == "succeeded" for i in ids)


def test_a_prefetch_beyond_the_server_s_claim_limit_still_claims(client: Client, start_worker) -> None:
    # 2 slots + 2,000 prefetched is more than one claim may ask for (1,000): the worker asks for at most that.
    start_worker("--pool", "py=py:2", "--prefetch", "2000")
    assert [client.run("add", {"a": n, "b": 1}, queue="py", timeout=20) for n in range(3)] == [1, 2, 3]


def test_a_bad_prefetch_is_refused_with_a_clear_message(server, tmp_path) -> None:
    worker = WorkerProcess(server.url, "--pool", "py=py:2", "--prefetch", "-1", log=tmp_path / "worker.log")
    assert worker.wait(10) != 0 and "--prefetch must be from 0 to 10000" in worker.output()


def test_a_killed_worker_s_task_is_rescued_and_runs_again(client: Client, start_worker) -> None:
    worker = start_worker("--pool", "py=py:1")
    task = client.enqueue("hold", {"seconds": 1}, queue="py", max_attempts=3)
    # Killed while the task runs: its lease (3 s on this server) lapses and the leader requeues it.
    until(lambda: client.status(task.id).state == "running", 10, "running")
    worker.signal(signal.SIGKILL)
    worker.wait(5)
    start_worker("--pool", "py=py:1")
    done = client.status(task.id, wait=30)
    assert done.state == "succeeded" and done.attempt == 2, done


def test_outcomes_are_fenced_by_the_lease_token(server) -> None:
    http = httpx.Client(base_url=server.url)
    http.put("/v1/workers/py-test", json={"host": "t", "kinds": ["add"], "pools": [{"name": "fence", "queues": ["fence"], "concurrency": 1}]})
    task_id = http.post("/v1/tasks", json={"kind": "add", "queue": "fence", "args": {"a": 1, "b": 1}}).json()["id"]
    claimed = http.post("/v1/workers/py-test/claim", json={"pools": [{"name": "fence", "queues": ["fence"], "free": 1}], "wait": 5}).json()["tasks"]
    assert [t["id"] for t in claimed] == [task_id]
    wrong = http.post("/v1/workers/py-test/outcomes", json={"outcomes": [{"id": task_id, "token": "12345", "result": 2}]}).json()
    assert wrong["outcomes"][0]["error"]["code"] == "lease_lost"
    right = http.post("/v1/workers/py-test/outcomes", json={"outcomes": [{"id": task_id, "token": claimed[0]["token"], "result": 2}]}).json()
    assert right["outcomes"] == [{"id": task_id, "state": "succeeded"}]
    again = http.post("/v1/workers/py-test/outcomes", json={"outcomes": [{"id": task_id, "token": claimed[0]["token"], "result": 3}]}).json()
    assert again["outcomes"][0]["error"]["code"] == "lease_lost"
    bad = http.post("/v1/workers/py-test/outcomes", json={"outcomes": [{"id": task_id, "token": claimed[0]["token"]}]})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "outcomes[0].result"
    assert http.get(f"/v1/tasks/{task_id}").json()["result"] == 2


def test_with_tokens_workers_authenticate_like_any_client(tmp_path) -> None:
    from support import Server, WorkerProcess

    server = Server(tmp_path, "--token", "s3cret")
    try:
        refused = WorkerProcess(server.url, log=tmp_path / "refused.log")
        assert refused.wait(20) != 0
        assert "cannot register worker" in refused.output() and "unauthorized" in refused.output()
        worker = WorkerProcess(server.url, "--token", "s3cret", "--pool", "py=py:2", log=tmp_path / "worker.log")
        try:
            with Client(server.url, token="s3cret") as client:
                until(lambda: len(client.workers()) == 2, 10, "the worker registered")
                assert client.run("add", {"a": 2, "b": 2}, queue="py", timeout=20) == 4
        finally:
            worker.signal(signal.SIGTERM)
            assert worker.wait(20) == 0, worker.output()
    finally:
        server.stop()


def test_a_kind_the_worker_lacks_fails_without_retry(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:2")
    # Another (pretend) worker runs `mystery`, so the enqueue is accepted; the Python pool claims it.
    httpx.put(f"{client.url}/v1/workers/other-1", json={"kinds": ["mystery"], "pools": []}).raise_for_status()
    task = client.status(client.enqueue("mystery", queue="py", max_attempts=5).id, wait=20)
    assert task.state == "failed" and task.attempt == 1 and "no function for kind mystery" in task.error


def test_a_task_past_its_timeout_fails_and_its_thread_counts_as_stuck(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:2")
    task = client.status(client.enqueue("hold", {"seconds": 4}, queue="py", timeout=1, max_attempts=1).id, wait=20)
    assert task.state == "failed" and "timed out after 1 s" in task.error
    # The thread cannot be stopped: its slot stays taken until the function returns.
    until(lambda: next(p for p in client.pools() if p["name"] == "py")["stuck"] == 1, 3, "1 stuck")
    until(lambda: next(p for p in client.pools() if p["name"] == "py")["stuck"] == 0, 6, "the thread returned")


def test_an_idle_pool_shows_its_slots_free(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:3")
    until(lambda: next(p for p in client.pools() if p["name"] == "py")["free"] == 3, 3, "3 free while the claimer waits")


def test_results_and_retries_the_server_cannot_take_fail_their_task_and_the_worker_goes_on(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:4")
    nan = client.status(client.enqueue("not_a_number", queue="py", max_attempts=1).id, wait=20)
    assert nan.state == "failed" and "not JSON" in nan.error, nan
    for after in ("inf", "negative"):
        retried = client.enqueue("retry_never", {"after": after}, queue="py", max_attempts=2)
        until(lambda: client.status(retried.id).state in ("retrying", "failed"), 20, f"Retry(after={after}) recorded")
        assert "the usual backoff applies" in client.status(retried.id).attempt_errors[0].message
    # A result too large for one request body (the server's --max-body, 1 MiB) among good ones: the
    # batch is split, the large one fails saying why, and the others are recorded.
    ids = [client.enqueue("huge", {"megabytes": 2}, queue="py", max_attempts=1).id]
    ids += [client.enqueue("add", {"a": n, "b": 1}, queue="py").id for n in range(6)]
    done = [client.status(i, wait=30) for i in ids]
    assert done[0].state == "failed" and "outcome was refused" in done[0].error and "body_too_large" in done[0].error, done[0]
    assert [t.result for t in done[1:]] == [1, 2, 3, 4, 5, 6], done[1:]
    # And the worker still claims.
    assert client.run("add", {"a": 40, "b": 2}, queue="py", timeout=20) == 42


def test_async_functions_run_no_more_than_the_pool_at_once_with_prefetch(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:2", "--prefetch", "4")
    ids = [client.enqueue("hold_async", {"seconds": 0.5}, queue="py").id for _ in range(8)]
    done = [client.result(i, timeout=30) for i in ids]
    assert max(r["high_water"] for r in done) == 2, done
    # Plain and async functions share the slots: a thread must not take a plain task into a slot
    # an async one holds (4 ran at once in a pool of 2 before).
    ids = [client.enqueue(kind, {"seconds": 0.4}, queue="py").id for kind in ["hold_async", "hold"] * 6]
    done = [client.result(i, timeout=30) for i in ids]
    assert max(r["high_water"] for r in done) == 2, done


def test_a_freed_slot_goes_to_the_task_claimed_first_plain_or_async(client: Client, start_worker) -> None:
    """With prefetch, plain and async tasks wait for one slot in claim order: a stream of async
    tasks claimed later must not hold a plain one back (async ones always went first before)."""
    start_worker("--pool", "py=py:1", "--prefetch", "4")
    first = client.enqueue("hold_async", {"seconds": 0.5}, queue="py")
    until(lambda: client.status(first.id).state == "running", 10, "the first task claimed")
    plain = client.enqueue("hold", {"seconds": 0.1}, queue="py")
    later = [client.enqueue("hold_async", {"seconds": 0.1}, queue="py") for _ in range(3)]
    until(lambda: all(client.status(t.id).state == "running" for t in [plain] + later), 10, "all five claimed")
    done = {t.id: client.status(t.id, wait=20) for t in [first, plain] + later}
    assert all(t.state == "succeeded" for t in done.values()), done
    # One slot: tasks finish in the order they ran (started_at is the claim, the same order either way).
    assert all(done[plain.id].finished_at < done[t.id].finished_at for t in later), done


def test_a_prefetched_task_cancelled_before_it_starts_never_runs(client: Client, start_worker, tmp_path) -> None:
    start_worker("--pool", "py=py:1", "--prefetch", "1")
    first = client.enqueue("hold", {"seconds": 3}, queue="py")
    mark = tmp_path / "ran"
    second = client.enqueue("touch", {"path": str(mark)}, queue="py")
    # Both claimed: the first runs, the second waits in the worker for the slot.
    until(lambda: client.status(second.id).state == "running", 10, "the second task prefetched")
    client.cancel(second.id)
    # Reported within a heartbeat, not when the slot frees.
    assert client.status(second.id, wait=2.5).state == "cancelled"
    assert client.status(first.id).state == "running"
    assert client.status(first.id, wait=20).state == "succeeded"
    # Its outcome is in: had the worker run it first, the mark would be there by now.
    assert not mark.exists(), "the cancelled task's function ran"


def test_a_server_with_a_short_max_wait_still_gets_claims(tmp_path) -> None:
    from support import Server, WorkerProcess

    server = Server(tmp_path, "--max-wait", "1")
    try:
        worker = WorkerProcess(server.url, "--pool", "py=py:2", log=tmp_path / "worker.log")
        try:
            with Client(server.url) as client:
                until(lambda: len(client.workers()) == 2, 10, "the worker registered")
                task = client.enqueue("add", {"a": 1, "b": 1}, queue="py")
                until(lambda: client.status(task.id).state == "succeeded", 10, "the worker claimed under --max-wait 1")
                assert "claim failed" not in worker.output()
        finally:
            worker.signal(signal.SIGTERM)
            assert worker.wait(20) == 0, worker.output()
    finally:
        server.stop()


def test_a_pool_spec_s_concurrency_follows_the_last_colon_so_queue_names_may_hold_one(client: Client, start_worker) -> None:
    assert PoolSpec.parse("jobs=mail:high,bulk:3") == PoolSpec("jobs", ["mail:high", "bulk"], 3)
    assert PoolSpec.parse("jobs=mail,bulk") == PoolSpec("jobs", ["mail", "bulk"], 10)
    for bad in ("jobs=mail:high", "jobs=mail:", "jobs=mail:0", "=mail:2", "jobs"):
        with pytest.raises(ValueError, match="--pool"):
            PoolSpec.parse(bad)
    start_worker("--pool", "jobs=mail:high:2")
    assert client.run("add", {"a": 4, "b": 5}, queue="mail:high", timeout=20) == 9


def test_a_release_of_more_leases_than_one_call_carries_hands_back_every_task(server) -> None:
    from sluice.protocol import WorkerAPI

    api = WorkerAPI(server.url, None, "py-release")
    api.register({"host": "t", "kinds": ["add"], "pools": [{"name": "big", "queues": ["big"], "concurrency": 1}]})
    http = httpx.Client(base_url=server.url)
    assert http.post("/v1/tasks/batch", json=[{"kind": "add", "queue": "big"}] * 1000).status_code == 202
    assert http.post("/v1/tasks/batch", json=[{"kind": "add", "queue": "big"}] * 500).status_code == 202
    claimed = api.claim([{"name": "big", "queues": ["big"], "free": 1000}], 0) + api.claim([{"name": "big", "queues": ["big"], "free": 1000}], 0)
    assert len(claimed) == 1500
    api.release([{"id": task["id"], "token": task["token"]} for task in claimed])
    queues = http.get("/v1/queues").json()["durable"]
    assert next(q for q in queues if q["queue"] == "big")["counts"]["queued"] == 1500
    api.close()


def _in_process(url: str, **options: Any) -> Tuple[Worker, threading.Thread]:
    from sluice import Worker
    worker = Worker(url, **options)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True)
    return worker, thread


def test_an_outcome_the_server_cannot_take_yet_keeps_its_lease_and_runs_once(server, monkeypatch) -> None:
    """Outcomes waiting to be reported are heartbeated like running tasks: reports that fail for
    longer than the lease (3 s here) while heartbeats go through must not let the task run again."""
    from sluice import PoolSpec, protocol
    real = protocol.WorkerAPI.outcomes
    refused_until: List[float] = []

    def busy(self: Any, outcomes: Any, refill: Any) -> Any:
        if not refused_until:
            refused_until.append(time.monotonic() + 5)
        if time.monotonic() < refused_until[0]:
            raise SluiceError(503, "storage", "database is locked (a test's)")
        return real(self, outcomes, refill)

    monkeypatch.setattr(protocol.WorkerAPI, "outcomes", busy)
    runs: List[float] = []
    worker, thread = _in_process(server.url, pools=[PoolSpec("once", ["once"], 1)])

    @worker.task("once")
    def once() -> str:
        runs.append(time.monotonic())
        return "done"

    thread.start()
    try:
        with Client(server.url) as client:
            until(lambda: any(w["pools"] and w["pools"][0]["name"] == "once" for w in client.workers()), 10, "registered")
            task = client.status(client.enqueue("once", queue="once", max_attempts=3).id, wait=20)
            assert task.state == "succeeded" and task.attempt == 1 and task.result == "done", task
            assert len(runs) == 1
    finally:
        worker.stop()
        thread.join(30)


def test_tasks_are_handed_back_at_shutdown_even_when_the_first_try_fails(server, monkeypatch) -> None:
    from sluice import PoolSpec, protocol
    real = protocol.WorkerAPI.release
    calls: List[int] = []

    def flaky(self: Any, leases: Any) -> None:
        calls.append(len(leases))
        if len(calls) == 1:
            raise SluiceError(503, "storage", "database is locked (a test's)")
        real(self, leases)

    monkeypatch.setattr(protocol.WorkerAPI, "release", flaky)
    worker, thread = _in_process(server.url, pools=[PoolSpec("back", ["back"], 1)], prefetch=3, grace=10)
    started = threading.Event()

    @worker.task("wait")
    def wait(seconds: float) -> None:
        started.set()
        time.sleep(seconds)

    thread.start()
    with Client(server.url) as client:
        until(lambda: any(w["pools"] and w["pools"][0]["name"] == "back" for w in client.workers()), 10, "registered")
        ids = [client.enqueue("wait", {"seconds": 1}, queue="back", max_attempts=1).id for _ in range(4)]
        until(lambda: all(client.status(i).state == "running" for i in ids), 10, "all four claimed")
        assert started.wait(10)
        worker.stop()
        thread.join(30)
        states = sorted(client.status(i).state for i in ids)
        assert states == ["queued", "queued", "queued", "succeeded"], states
        assert calls and calls[0] == 3


def test_a_server_that_holds_no_claim_open_is_not_asked_a_thousand_times_a_second(tmp_path, monkeypatch) -> None:
    from sluice import PoolSpec, protocol
    from support import Server

    server = Server(tmp_path, "--max-wait", "0")
    real = protocol.WorkerAPI.claim
    claims: List[float] = []

    def counted(self: Any, pools: Any, wait: float) -> Any:
        claims.append(time.monotonic())
        return real(self, pools, wait)

    monkeypatch.setattr(protocol.WorkerAPI, "claim", counted)
    worker, thread = _in_process(server.url, pools=[PoolSpec("idle", ["idle"], 4)])

    @worker.task("noop")
    def noop() -> None:
        return None

    try:
        thread.start()
        time.sleep(3)
        assert 1 <= len(claims) <= 30, f"{len(claims)} claims in 3 s of idling"
        # And a task still starts promptly.
        with Client(server.url) as client:
            task = client.enqueue("noop", queue="idle")
            until(lambda: client.status(task.id).state == "succeeded", 5, "the task ran")
    finally:
        worker.stop()
        thread.join(30)
        server.stop()
