"""Huey with its SQLite storage, the peer for the burst, enqueue and drain scenarios.
The database path comes from HUEY_DB. Run the consumer as:
  huey_consumer huey_app.huey -k thread -w 50
"""
import os
import time

from huey import SqliteHuey

huey = SqliteHuey("sluice-bench", filename=os.environ.get("HUEY_DB", "huey.db"))


@huey.task()
def sleep(seconds):
    time.sleep(seconds)
    return True


@huey.task()
def echo(n):
    # Returns a value so that Huey stores a result, as Sluice stores one for echo.
    return n
