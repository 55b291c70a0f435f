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


def test_a_kind_the_worker_lacks_fails_its_attempt_and_is_retried(client: Client, start_worker) -> None:
    """Another process draining the same queue may know the kind: an ordinary failure, retried by
    the task's policy (as River, Oban and Sidekiq do), not a failure for good."""
    start_worker("--pool", "py=py:2")
    # Another (pretend) worker runs `mystery`, so the enqueue is accepted; the Python pool claims it.
    httpx.put(f"{client.url}/v1/workers/other-1", json={"kinds": ["mystery"], "pools": []}).raise_for_status()
    # Backoff before the second attempt: at most 1 s.
    task = client.status(client.enqueue("mystery", queue="py", max_attempts=2).id, wait=20)
    assert task.state == "failed" and task.attempt == 2 and len(task.attempt_errors) == 2, task
    message = task.attempt_errors[0].message
    assert "no function for kind mystery in worker py:" in message and "(kinds: add, add_async" in message, message
    assert "every process that drains queue py must know every kind" in message and "sluice serve --no-pool" in message, message
    assert "Traceback" not in message


def test_a_task_past_its_timeout_fails_and_its_thread_counts_as_stuck(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:2")
    task = client.status(client.enqueue("hold", {"seconds": 4}, queue="py", timeout=1, max_attempts=1).id, wait=20)
    assert task.state == "failed" and "timed out after 1 s" in task.error

    def pool() -> dict:
        return next(p for p in client.pools() if p["name"] == "py")
    # The thread cannot be stopped: its slot stays taken until the function returns. The attempt
    # counts in the pool's figures at its deadline, as the failure it was reported as.
    until(lambda: pool()["stuck"] == 1 and pool()["processed"] == 1, 3, "1 stuck, 1 processed")
    assert pool()["failed"] == 1, pool()
    until(lambda: pool()["stuck"] == 0, 6, "the thread returned")
    time.sleep(1.2)  # a heartbeat after the return: counted once, not again
    assert (pool()["processed"], pool()["failed"]) == (1, 1), pool()


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
    # batch is split, the large one fails saying why, without a retry (it would answer the same
    # again), and the others are recorded.
    ids = [client.enqueue("huge", {"megabytes": 2}, queue="py", max_attempts=3).id]
    ids += [client.enqueue("add", {"a": n, "b": 1}, queue="py").id for n in range(6)]
    done = [client.status(i, wait=30) for i in ids]
    assert done[0].state == "failed" and "outcome was refused" in done[0].error and "body_too_large" in done[0].error, done[0]
    assert done[0].attempt == 1 and len(done[0].attempt_errors) == 1, done[0]
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


def test_an_async_function_behind_a_decorator_runs_on_the_event_loop(client: Client, start_worker) -> None:
    start_worker("--pool", "py=py:2")
    # functools.wraps around an async def: the wrapper is a plain function, called on a pool thread
    # (it may block, or run the coroutine itself), and the coroutine it returns runs on the loop.
    traced = client.run("add_traced", {"a": 1, "b": 2}, queue="py", timeout=20)
    assert traced["sum"] == 3 and traced["called_on"] != "sluice-asyncio", traced
    # A plain function that returns a coroutine: awaited on the event loop, not failed as "not JSON".
    assert client.run("add_later", {"a": 2, "b": 3}, queue="py", timeout=20) == {"sum": 5, "kind": "add_later"}


def _held_running(url: str, queue: str) -> int:
    queues = httpx.get(f"{url}/v1/queues").json()["durable"]
    return next((q["counts"]["running"] for q in queues if q["queue"] == queue), 0)


def test_a_heartbeat_of_more_leases_than_one_body_takes_renews_every_lease(tmp_path, monkeypatch) -> None:
    """1,500 prefetched leases, renewed while the one slot is taken for longer than the lease (3 s):
    one heartbeat of them all was over the server's --max-body (64 KiB here), refused, and renewed
    none, so the tasks were rescued and ran again."""
    from sluice import PoolSpec, protocol
    from support import Server

    server = Server(tmp_path, "--max-body", "65536")
    real = protocol.WorkerAPI._post
    beats: List[List[dict]] = []
    sizes: List[int] = []

    def recorded(self: Any, path: str, body: Any, *args: Any, **kwargs: Any) -> Any:
        if path == "/heartbeat":
            beats.append(body["leases"])
            sizes.append(len(protocol._encode(body)))
        return real(self, path, body, *args, **kwargs)

    monkeypatch.setattr(protocol.WorkerAPI, "_post", recorded)
    worker, thread = _in_process(server.url, pools=[PoolSpec("many", ["many"], 1)], prefetch=1500)
    gate = threading.Event()
    runs: List[int] = []

    @worker.task("gated")
    def gated(n: int) -> int:
        runs.append(n)
        gate.wait(20)
        return n

    try:
        thread.start()
        with Client(server.url) as client:
            until(lambda: any(w["pools"] and w["pools"][0]["name"] == "many" for w in client.workers()), 10, "registered")
            ids = [task.id for start in range(0, 1500, 500)
                   for task in client.enqueue_many([{"kind": "gated", "args": {"n": n}, "queue": "many", "max_attempts": 3}
                                                    for n in range(start, start + 500)])]
            until(lambda: _held_running(server.url, "many") == 1500, 15, "1500 tasks claimed")
            time.sleep(5)  # beyond the lease: only heartbeats keep them
            gate.set()
            until(lambda: len(runs) >= 1500 and _held_running(server.url, "many") == 0, 30, "every task ran")
            done = [client.status(i) for i in ids]
        again = [t for t in done if t.state != "succeeded" or t.attempt != 1]
        assert not again, f"{len(again)} of 1500 tasks not succeeded at their first attempt, e.g. {again[0]}"
        assert sorted(runs) == list(range(1500)), f"{len(runs)} runs of 1500 tasks"
        # Every call within the limits: at most 1,000 leases, each only its id and token, and 64 KiB.
        big = [b for b in beats if len(b) > 100]
        assert big and max(len(b) for b in beats) <= 1000 and all(set(lease) == {"id", "token"} for b in big for lease in b)
        assert max(sizes) <= 64 * 1024, max(sizes)
    finally:
        gate.set()
        worker.stop()
        thread.join(30)
        server.stop()


def test_a_heartbeat_is_split_further_when_the_server_takes_smaller_bodies(tmp_path) -> None:
    """A server with a --max-body below what one call of leases takes (8 KiB here): the calls it
    refuses as too large are halved until it takes them, and every lease is answered, in order."""
    from sluice.protocol import WorkerAPI
    from support import Server

    server = Server(tmp_path, "--max-body", "8192")
    api = WorkerAPI(server.url, None, "py-small-bodies")
    try:
        description = {"host": "t", "pid": 1, "kinds": ["only_here"], "pools": [{"name": "small", "queues": ["small"], "concurrency": 1}]}
        api.register(description)
        # Leases of no task this server has: answered lost, which is enough to see each answered.
        leases = [{"id": f"01JD8X3C4V5B6N7M8Q9R{n:06d}", "token": str(4611686018427387904 + n)} for n in range(2500)]
        answer = api.heartbeat(description, leases)
        assert [entry["id"] for entry in answer["leases"]] == [lease["id"] for lease in leases]
        assert {entry["status"] for entry in answer["leases"]} == {"lost"}
        assert answer["lease"] == 3.0
        # The registration stands: the follow-up calls left it out, and the server kept it.
        worker = next(w for w in httpx.get(f"{server.url}/v1/workers").json()["workers"] if w["id"] == "py-small-bodies")
        assert worker["host"] == "t" and worker["pools"][0]["name"] == "small", worker
        # Its kind still accepted by enqueues (refused, 422, when no live process runs it).
        assert httpx.post(f"{server.url}/v1/tasks", json={"kind": "only_here", "queue": "small"}).status_code == 202
    finally:
        api.close()
        server.stop()


def test_a_bad_log_level_or_a_pool_given_twice_is_refused_with_a_clear_message(server, tmp_path) -> None:
    level = WorkerProcess(server.url, "--log-level", "verbose", log=tmp_path / "level.log")
    assert level.wait(10) == 2
    assert "--log-level: invalid choice: 'verbose'" in level.output() and "Traceback" not in level.output(), level.output()
    twice = WorkerProcess(server.url, "--pool", "a=q1:2", "--pool", "a=q2:3", log=tmp_path / "twice.log")
    assert twice.wait(10) == 1
    assert "sluice-worker: --pool a=… is given twice" in twice.output() and "Traceback" not in twice.output(), twice.output()
    # And so does a Worker given two pools of one name in code, before it registers.
    from sluice import Worker
    worker = Worker(server.url, pools=[PoolSpec("a", ["q1"], 1), PoolSpec("a", ["q2"], 1)])
    worker.task("noop")(lambda: None)
    with pytest.raises(ValueError, match="pool a is given twice"):
        worker.run(install_signal_handlers=False)
    # Any case will do.
    upper = WorkerProcess(server.url, "--log-level", "WARNING", "--pool", "py=py:1", log=tmp_path / "upper.log")
    try:
        until(lambda: any(w["pid"] == upper.process.pid for w in httpx.get(server.url + "/v1/workers").json()["workers"]), 10, "registered")
    finally:
        upper.signal(signal.SIGTERM)
        assert upper.wait(20) == 0, upper.output()


def test_httpx_logs_no_request_lines_at_the_default_level(client: Client, start_worker) -> None:
    worker = start_worker("--pool", "py=py:2")
    assert client.run("add", {"a": 1, "b": 1}, queue="py", timeout=20) == 2
    time.sleep(1.5)  # heartbeats too
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    output = worker.output()
    assert "worker py:" in output and "HTTP Request" not in output, output
    debug = start_worker("--pool", "py=py:2", "--log-level", "debug")
    assert client.run("add", {"a": 1, "b": 2}, queue="py", timeout=20) == 3
    debug.signal(signal.SIGTERM)
    assert debug.wait(20) == 0
    assert "HTTP Request" in debug.output()


def test_tasks_still_running_after_the_grace_period_are_logged_as_running(client: Client, start_worker) -> None:
    worker = start_worker("--pool", "py=py:2", "--grace", "0.5")
    task = client.enqueue("hold", {"seconds": 5}, queue="py")
    until(lambda: next(p for p in client.pools() if p["name"] == "py")["busy"] == 1, 10, "running")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
    output = worker.output()
    assert "handing back 1 running task(s)" in output and "handed back 1 running task(s)" in output, output
    assert "unstarted" not in output, output
    assert client.status(task.id).state == "queued"
