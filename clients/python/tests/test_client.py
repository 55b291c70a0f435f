"""Producer side against the real server: enqueue, status and wait, cancel, errors; sync and async."""
from __future__ import annotations

import asyncio

import httpx

import pytest

import time
from typing import List

from sluice import AsyncClient, Client, SluiceError, TaskFailed, TaskTimeout


def test_enqueue_wait_and_read_back(client: Client) -> None:
    task = client.enqueue("echo", {"to": "ann"}, queue="swift-only", priority=3)
    assert task.state in ("queued", "running", "succeeded") and task.queue == "swift-only" and task.priority == 3
    done = client.status(task.id, wait=10)
    assert done.state == "succeeded" and done.done and done.result == {"to": "ann"}
    assert client.run("echo", {"n": 1}, queue="swift-only", timeout=10) == {"n": 1}


def test_enqueue_many_and_wait_for_all(client: Client) -> None:
    tasks = client.enqueue_many([{"kind": "echo", "args": {"i": i}, "queue": "swift-only"} for i in range(5)], wait=10)
    assert [task.state for task in tasks] == ["succeeded"] * 5
    assert [task.result for task in tasks] == [{"i": i} for i in range(5)]
    waiting = client.enqueue_many([{"kind": "echo", "queue": "swift-only", "delay": 60}])
    assert len(waiting) == 1 and waiting[0].state == "scheduled"
    client.cancel(waiting[0].id)
    with pytest.raises(SluiceError) as bad:
        client.enqueue_many([{"kind": "echo"}, {"kind": "echo", "priority": 5000}])
    assert bad.value.status == 400 and bad.value.field == "[1].priority"


def test_cancel_a_waiting_task(client: Client) -> None:
    task = client.enqueue("echo", queue="swift-only", delay=60)
    assert task.state == "scheduled"
    assert client.cancel(task.id).state == "cancelled"
    with pytest.raises(TaskFailed) as failed:
        client.result(task.id, timeout=1)
    assert failed.value.task.state == "cancelled"


def test_errors_name_the_code_and_field(client: Client) -> None:
    with pytest.raises(SluiceError) as unknown:
        client.enqueue("no_such_kind")
    assert unknown.value.status == 422 and unknown.value.code == "unknown_kind" and unknown.value.field == "kind"
    with pytest.raises(SluiceError) as bad:
        client.enqueue("echo", queue="bad queue!")
    assert bad.value.status == 400 and bad.value.field == "queue"
    with pytest.raises(SluiceError) as missing:
        client.status("01JD0000000000000000000000")
    assert missing.value.status == 404
    with pytest.raises(SluiceError) as nobody:
        Client("http://127.0.0.1:9").enqueue("echo")
    assert nobody.value.code == "unreachable" and "127.0.0.1:9" in nobody.value.message


def test_async_client(server) -> None:
    async def main() -> None:
        async with AsyncClient(server.url) as client:
            results = await asyncio.gather(*(client.run("echo", {"i": i}, queue="swift-only", timeout=20) for i in range(5)))
            assert results == [{"i": i} for i in range(5)]
            many = await client.enqueue_many([{"kind": "echo", "args": {"i": i}, "queue": "swift-only"} for i in range(3)], wait=10)
            assert [task.result for task in many] == [{"i": i} for i in range(3)]
            task = await client.enqueue("echo", queue="swift-only", delay=60)
            assert (await client.cancel(task.id)).state == "cancelled"
            assert (await client.status(task.id)).state == "cancelled"
            assert any(pool["name"] == "swift" for pool in await client.pools())
            assert any(worker["this_server"] for worker in await client.workers())

    asyncio.run(main())


def test_run_s_timeout_bounds_the_whole_call(client: Client) -> None:
    # Nothing drains this queue: the enqueue's wait and the waits after it share the 2 s.
    started = time.monotonic()
    with pytest.raises(TaskTimeout):
        client.run("echo", queue="nobody-drains", timeout=2)
    assert time.monotonic() - started < 3.5, "run() waited twice its timeout"


def test_run_takes_the_task_s_own_timeout_apart_from_its_wait(client: Client) -> None:
    # `timeout` bounds run()'s wait; `task_timeout` is what the task may take (each attempt).
    with pytest.raises(TaskFailed) as failed:
        client.run("sleep", {"seconds": 30}, queue="swift-only", timeout=20, task_timeout=0.5, max_attempts=1)
    assert "timed out after 0.5 s" in str(failed.value)

    async def main() -> None:
        async with AsyncClient(client.url) as aclient:
            with pytest.raises(TaskFailed):
                await aclient.run("sleep", {"seconds": 30}, queue="swift-only", timeout=20, task_timeout=0.5, max_attempts=1)

    asyncio.run(main())


def test_a_full_queue_says_when_to_try_again(tmp_path) -> None:
    from support import Server, until

    server = Server(tmp_path, "--max-queue-depth", "1")
    try:
        with Client(server.url) as client:
            # The server reads queue depths from counts it refreshes: refusals start within a moment.
            refused = []

            def full() -> bool:
                try:
                    client.enqueue("echo", queue="nobody-drains")
                except SluiceError as error:
                    refused.append(error)
                return bool(refused)
            until(full, 10, "an enqueue refused past --max-queue-depth")
            assert refused[0].status == 503 and refused[0].code == "queue_full" and refused[0].retry_after == 1.0, refused[0]
    finally:
        server.stop()


def test_a_client_told_a_server_s_shorter_max_wait_waits_within_it(tmp_path) -> None:
    from support import Server

    server = Server(tmp_path, "--max-wait", "1")
    try:
        with Client(server.url) as default:
            with pytest.raises(SluiceError) as refused:
                default.run("sleep", {"seconds": 0.01}, queue="swift-only", timeout=5)
            assert refused.value.status == 400 and refused.value.field == "wait"
        with Client(server.url, max_wait=1) as client:
            # 1.5 s outlasts one request's 1 s wait: the client asks again.
            assert client.run("sleep", {"seconds": 1.5}, queue="swift-only", timeout=10) == {"slept": 1.5}
        with pytest.raises(ValueError, match="max_wait"):
            Client(server.url, max_wait=0)
    finally:
        server.stop()


def test_sluice_token_may_list_several_tokens_as_the_server_reads_it(tmp_path, monkeypatch) -> None:
    from support import Server

    server = Server(tmp_path, "--token", "s3cret", "--token", "other")
    try:
        monkeypatch.setenv("SLUICE_TOKEN", " s3cret , other")
        with Client(server.url) as client:
            assert client.workers()  # authenticated with the first entry
        monkeypatch.setenv("SLUICE_TOKEN", "wrong")
        with Client(server.url) as client, pytest.raises(SluiceError) as refused:
            client.workers()
        assert refused.value.status == 401
    finally:
        server.stop()


def test_ids_and_names_from_users_stay_one_path_segment(client: Client) -> None:
    """A task id or pool name taken from a user (a web app's query parameter) cannot reach another
    endpoint: `../queues/mail/pause?` paused the queue `mail` before."""
    import pytest
    from sluice import SluiceError
    for call in (lambda: client.cancel("../queues/mail/pause?"), lambda: client.status("../queues/mail/pause?"),
                 lambda: client.resize("../queues/mail/pause?", 2)):
        with pytest.raises(SluiceError):
            call()
    assert httpx.get(f"{client.url}/v1/queues").json()["paused"] == []
    # Names with a colon, which queue and pool names may hold, still reach their own endpoint.
    with pytest.raises(SluiceError) as raised:
        client.resize("mail:high", 3)
    assert raised.value.code == "not_found" and "pool mail:high does not run" in raised.value.message


def test_the_sync_client_holds_as_many_waiting_calls_at_once_as_the_async_one(client: Client, server) -> None:
    """150 threads waiting on one `Client` at once: httpx's default pool of 100 connections made the
    last 50 wait for the first 100 to end (4 s, not 2)."""
    import threading

    task = client.enqueue("echo", queue="nobody-drains")
    with Client(server.url) as shared:
        states: List[str] = []

        def wait() -> None:
            states.append(shared.status(task.id, wait=2).state)
        threads = [threading.Thread(target=wait) for _ in range(150)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        elapsed = time.monotonic() - started
    assert states == ["queued"] * 150
    assert elapsed < 3.5, f"150 waits of 2 s took {elapsed:.1f} s"
    client.cancel(task.id)


def test_a_client_out_of_connections_says_so(client: Client, server, monkeypatch) -> None:
    import threading

    from sluice import client as client_module

    # A connection is waited for as long as a call's timeout: its wait plus this slack.
    monkeypatch.setattr(client_module, "SLACK", 0.5)
    task = client.enqueue("echo", queue="nobody-drains")
    with Client(server.url, max_connections=1) as one:
        holder = threading.Thread(target=one.status, args=(task.id,), kwargs={"wait": 2})
        holder.start()
        time.sleep(0.3)
        with pytest.raises(SluiceError) as raised:
            one.status(task.id)
        holder.join(10)
    assert raised.value.code == "pool_timeout", raised.value
    assert "all 1 of this client's connections were in use" in raised.value.message and "not sent" in raised.value.message
    client.cancel(task.id)
