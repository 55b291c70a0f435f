"""`sluice-worker module:worker`: runs the functions registered on a `Worker` object."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

from .errors import SluiceError
from .pool import PoolSpec
from .worker import Worker, duplicate_pool

#: The levels `--log-level` takes (in any case).
LOG_LEVELS = ("debug", "info", "warning", "error")


def load(target: str) -> Worker:
    """The `Worker` named by `module:attribute` (the current directory is importable)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"sluice-worker: {target}: expected MODULE:WORKER, e.g. myapp.tasks:worker")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SystemExit(f"sluice-worker: cannot import {module_name}: {error}")
    worker = getattr(module, attribute, None)
    if not isinstance(worker, Worker):
        raise SystemExit(f"sluice-worker: {target} is not a sluice.Worker (found {type(worker).__name__})")
    return worker


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="sluice-worker", description="Run Python functions as Sluice tasks.")
    parser.add_argument("target", metavar="MODULE:WORKER", help="the sluice.Worker whose functions to run")
    parser.add_argument("--url", help="the Sluice server (default $SLUICE_URL, else http://127.0.0.1:8000)")
    parser.add_argument("--token", help="bearer token (default $SLUICE_TOKEN)")
    parser.add_argument("--pool", action="append", default=[], metavar="NAME=QUEUES:N",
                        help="a pool, e.g. images=images,bulk:20 (repeatable; default: the worker's own, else default=default:10); "
                             "N follows the last colon, so a queue name holding one needs it: jobs=mail:high:5")
    parser.add_argument("--prefetch", type=int, metavar="N",
                        help="tasks each pool claims beyond its free slots, for short tasks (default 0: a task is claimed only for a free slot)")
    parser.add_argument("--grace", type=float, help="seconds running tasks get to finish on SIGTERM (default 30)")
    parser.add_argument("--log-level", default="info", type=str.lower, choices=LOG_LEVELS,
                        help="debug, info, warning or error (default info; httpx's request lines only with debug)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        # httpx logs every request at info: several a second for a worker (claims, heartbeats, outcomes).
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    worker = load(args.target)
    try:
        if args.pool:
            specs = [PoolSpec.parse(text) for text in args.pool]
            repeated = duplicate_pool(specs)
            if repeated is not None:
                raise ValueError(f"--pool {repeated}=… is given twice: each pool needs a name of its own "
                                 "(one pool may drain several queues: NAME=QUEUE,QUEUE:N)")
            worker.pool_specs = specs
    except ValueError as error:
        raise SystemExit(f"sluice-worker: {error}")
    if args.url:
        worker.url = args.url.rstrip("/")
    if args.token:
        worker.token = args.token
    if args.prefetch is not None:
        if not 0 <= args.prefetch <= 10_000:
            raise SystemExit("sluice-worker: --prefetch must be from 0 to 10000")
        worker.prefetch = args.prefetch
    if args.grace is not None:
        if args.grace < 0:
            raise SystemExit("sluice-worker: --grace must be 0 or more seconds")
        worker.grace = args.grace
    try:
        worker.run()
    except SluiceError as error:
        raise SystemExit(f"sluice-worker: {error}")


if __name__ == "__main__":
    main()
