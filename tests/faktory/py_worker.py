"""A worker made with the PyPI `faktory` client, as its users write one. Every job it runs
is a line in OUT: `jobtype jid args`. Run: python py_worker.py URL QUEUES OUT [CONCURRENCY]."""

import json
import sys
import time

from faktory import Worker

URL, QUEUES, OUT = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
CONCURRENCY = int(sys.argv[4]) if len(sys.argv) > 4 else 4


def note(kind, *args):
    with open(OUT, "a") as out:
        out.write(f"{kind} {json.dumps(list(args))}\n")


def add(x, y):
    note("add", x, y)
    return x + y


def boom(why):
    note("boom", why)
    raise ValueError(f"boom: {why}")


def hold(seconds):
    note("hold", seconds)
    time.sleep(seconds)


def from_node(*args):
    note("from_node", *args)


worker = Worker(faktory=URL, queues=QUEUES, concurrency=CONCURRENCY, use_threads=True,
                labels=["python", "test"])
worker.send_heartbeat_every = 1  # seconds (15 by default): the tests wait for its beats
for name, fn in (("add", add), ("boom", boom), ("hold", hold), ("from_node", from_node)):
    worker.register(name, fn)
note("started", str(worker.worker_id))
worker.run()
