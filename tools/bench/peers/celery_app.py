"""Celery with a Redis broker and Redis results, the peer for the python-drain scenario. The broker
and result URLs come from CELERY_BROKER and CELERY_RESULTS. Run the worker as:
  celery -A celery_app worker --pool threads --concurrency 16
"""
import os

from celery import Celery

app = Celery("sluice-bench", broker=os.environ.get("CELERY_BROKER", "redis://127.0.0.1:6379/0"),
             backend=os.environ.get("CELERY_RESULTS", "redis://127.0.0.1:6379/1"))
# Prefetch per thread: Celery's default, 4, unless CELERY_PREFETCH says otherwise (for trying others by hand).
app.conf.worker_prefetch_multiplier = int(os.environ.get("CELERY_PREFETCH", "4"))


@app.task
def echo(n):
    # Returns a value so that Celery stores a result, as Sluice stores one for every task.
    return n
