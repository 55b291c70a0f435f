"""PostgreSQL's own claim+complete limit and the PostgreSQL peers (pgqueuer, procrastinate), each
draining N no-op jobs from one process. Run by tools/bench/bench.py (the postgres scenario):

    python pg_peers.py raw|pgqueuer|procrastinate URL N

URL names an empty database of its own. Each fills N jobs first (not timed), then times the drain
from the worker's start until it returns or the last job is done, and prints one JSON line:
{"seconds": drain seconds, "done": jobs finished, "left": jobs not finished}.
"""
import asyncio
import json
import sys
import time
from datetime import timedelta


async def raw(url, n):
    """A bare SKIP LOCKED loop on one connection: claim 64 rows in one statement (a CTE with the
    LIMIT inside, as Sluice claims), then mark the 64 done in one statement; each its own
    transaction (autocommit), as a worker's claim and its batched completion are."""
    import asyncpg
    conn = await asyncpg.connect(url)
    await conn.execute("""
        CREATE TABLE jobs (id bigserial PRIMARY KEY, state text NOT NULL DEFAULT 'queued',
                           args jsonb NOT NULL DEFAULT '{}', locked_at timestamptz, finished_at timestamptz);
        CREATE INDEX jobs_ready ON jobs (id) WHERE state = 'queued';""")
    await conn.execute("INSERT INTO jobs (state) SELECT 'queued' FROM generate_series(1, $1)", n)
    await conn.execute("VACUUM ANALYZE jobs")
    claim = await conn.prepare("""
        WITH c AS (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 64 FOR UPDATE SKIP LOCKED)
        UPDATE jobs SET state = 'running', locked_at = now() FROM c WHERE jobs.id = c.id RETURNING jobs.id""")
    complete = await conn.prepare("""
        UPDATE jobs SET state = 'done', finished_at = now() FROM unnest($1::bigint[]) AS d(id)
        WHERE jobs.id = d.id AND jobs.state = 'running'""")
    start = time.monotonic()
    while True:
        ids = [r[0] for r in await claim.fetch()]
        if not ids:
            break
        await complete.fetch(ids)
    seconds = time.monotonic() - start
    done = await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'done'")
    await conn.close()
    return {"seconds": seconds, "done": done, "left": n - done}


async def pgqueuer(url, n):
    """pgqueuer's QueueManager on one asyncpg connection, batch 100 (its documented throughput
    setting; the default is 10), no concurrency cap, mode=drain: run() returns when the queue is
    empty and every job has finished."""
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode
    conn = await asyncpg.connect(url)
    driver = AsyncpgDriver(conn)
    queries = Queries(driver)
    await queries.install()
    for start in range(0, n, 10_000):
        k = min(10_000, n - start)
        await queries.enqueue(["noop"] * k, [None] * k, [0] * k)
    qm = QueueManager(queries)

    @qm.entrypoint("noop")
    async def noop(job):
        pass

    start = time.monotonic()
    await qm.run(batch_size=100, mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1))
    seconds = time.monotonic() - start
    conn = await asyncpg.connect(url)
    left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
    done = await conn.fetchval("SELECT coalesce(sum(count), 0) FROM pgqueuer_statistics WHERE status = 'successful'")
    logged = await conn.fetchval("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")
    await conn.close()
    return {"seconds": seconds, "done": int(max(done, logged)), "left": left}


async def procrastinate(url, n, concurrency=32):
    """procrastinate's worker, concurrency 32 (async no-op jobs; the pool sized to match),
    LISTEN/NOTIFY on, wait=False: the worker returns when no job is left."""
    import procrastinate as p
    app = p.App(connector=p.PsycopgConnector(conninfo=url, min_size=4, max_size=concurrency + 4))

    @app.task(name="noop")
    async def noop():
        pass

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, n, 10_000):
            await noop.batch_defer_async(*[{}] * min(10_000, n - start))
        start = time.monotonic()
        await app.run_worker_async(concurrency=concurrency, wait=False, install_signal_handlers=False)
        seconds = time.monotonic() - start
    import psycopg
    with psycopg.connect(url) as conn:
        done = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[0]
        left = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'").fetchone()[0]
    return {"seconds": seconds, "done": done, "left": left}


if __name__ == "__main__":
    which, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    extra = [int(a) for a in sys.argv[4:]]
    print(json.dumps(asyncio.run({"raw": raw, "pgqueuer": pgqueuer, "procrastinate": procrastinate}[which](url, n, *extra))), flush=True)
