"""Prometheus metrics of the whole deployment, read from the shared backend at scrape time
(so every instance answers the same, and several never double count).

Counts come from the counters the records database keeps, totals and histograms from the
per-minute and per-bucket tables the workers add to: a scrape costs the same with a
million job records as with ten.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from synthbox.jobs.engine import Engine
from synthbox.jobs.periodic import run_when_free
from synthbox.jobs.tallies import BUCKETS
from synthbox.records.models import STATES
from synthbox.records.outage import outage_cause

INSTANCE_UP_WITHIN = 30.0  # seconds since its last heartbeat
TOTALS = (("completed", "Jobs completed"), ("failed", "Jobs failed for good"),
          ("retried", "Failed attempts that were retried"),
          ("stalled", "Jobs whose worker stopped answering"),
          ("rate_limited", "Claims the rate limit turned down"))
HISTOGRAMS = (("duration", "synthbox_job_duration_seconds", "Run time of an attempt"),
              ("wait", "synthbox_job_wait_seconds", "Time from due to pickup"))


class DeploymentCollector:
    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """This process's view of the records first (it answers while they are away),
        then the deployment's figures read from them (left out while they are away)."""
        state = self.engine.records_state()
        up = GaugeMetricFamily("synthbox_records_up", "1 while the records database takes "
                               "writes, as this process last found it")
        up.add_metric([], 1 if state["up"] else 0)
        waiting = GaugeMetricFamily("synthbox_outcomes_unrecorded", "Job outcomes held in "
                                    "this process's memory until the records database is back")
        waiting.add_metric([], state["unrecorded"])
        yield from (up, waiting)
        try:
            families = run_when_free(lambda: list(self._from_records()))
        except Exception as exc:
            if outage_cause(exc) is None:
                raise
            families = []
        yield from families
        yield from periodic_metrics(self.engine)
        yield from listener_metrics(self.engine)

    def _from_records(self) -> Iterator[Metric]:
        engine = self.engine
        now = time.time()
        waiting = GaugeMetricFamily("queue_waiting_jobs", "Jobs waiting to run, paused "
                                    "queues included (the seed's autoscaling metric)",
                                    labels=["queue"])
        jobs = GaugeMetricFamily("synthbox_queue_jobs", "Jobs per queue and state",
                                 labels=["queue", "state"])
        paused = GaugeMetricFamily("synthbox_queue_paused", "1 when the queue is paused",
                                   labels=["queue"])
        oldest = GaugeMetricFamily("synthbox_queue_oldest_waiting_seconds",
                                   "How long the longest-waiting due job has waited",
                                   labels=["queue"])
        for queue in engine.overview():
            name, stats = queue["name"], queue["stats"]
            waiting.add_metric([name], stats["waiting"] + stats["paused"])
            for state in (*STATES, "paused"):
                jobs.add_metric([name, state], stats[state])
            paused.add_metric([name], 1 if queue["paused"] else 0)
            due = engine.store.oldest_due(name, now)
            oldest.add_metric([name], 0 if due is None else max(now - due, 0.0))
        yield from (waiting, jobs, paused, oldest)

        totals = engine.store.tallies.totals()
        for column, meaning in TOTALS:
            counter = CounterMetricFamily(f"synthbox_jobs_{column}", meaning, labels=["queue"])
            for name in engine.queues:
                counter.add_metric([name], totals.get(name, {}).get(column) or 0)
            yield counter

        cells: dict[tuple[str, str], dict[int, tuple[int, float]]] = defaultdict(dict)
        for queue_name, metric, bucket, count, total in engine.store.tallies.histogram():
            cells[(queue_name, metric)][bucket] = (count, total)
        for metric, family_name, meaning in HISTOGRAMS:
            family = HistogramMetricFamily(family_name, meaning, labels=["queue"])
            for name in engine.queues:
                buckets, running, seconds = [], 0, 0.0
                for index, bound in enumerate(BUCKETS):
                    count, total = cells[(name, metric)].get(index, (0, 0.0))
                    running += count
                    seconds += total
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound),
                                    running))
                family.add_metric([name], buckets, seconds)
            yield family

        instances = engine.instances()
        up = GaugeMetricFamily("synthbox_instances_up", "Instances whose heartbeat is recent")
        up.add_metric([], sum(1 for i in instances if i["secondsSinceSeen"]
                              < INSTANCE_UP_WITHIN))
        yield up
        backend = GaugeMetricFamily("synthbox_backend_up", "1 when the backend answers",
                                    labels=["backend"])
        for name, state in engine.readiness().items():
            backend.add_metric([name], 1 if state == "ok" else 0)
        yield backend


def periodic_metrics(engine: Engine) -> Iterator[Metric]:
    """This instance's upkeep tasks: runs, failed runs and time spent, per task."""
    families = (("runs", "Runs of each upkeep task in this instance"),
                ("errors", "Runs of each upkeep task that failed, in this instance"),
                ("seconds", "Time spent in each upkeep task in this instance"))
    for figure, meaning in families:
        family = CounterMetricFamily(f"synthbox_periodic_{figure}", meaning,
                                     labels=["task", "instance"])
        for task in engine.periodic_tasks():
            family.add_metric([task.name, engine.instance_id], getattr(task, figure))
        yield family


def listener_metrics(engine: Engine) -> Iterator[Metric]:
    """This instance's PostgreSQL doorbell listener, where it has one (records in
    PostgreSQL, no Redis): whether it listens, and the adds of other instances it heard."""
    listener = engine.listener
    if listener is None:
        return
    up = GaugeMetricFamily("synthbox_doorbell_listener_up", "1 while this instance LISTENs "
                           "for the adds of the others (PostgreSQL, no Redis)",
                           labels=["instance"])
    up.add_metric([engine.instance_id], 1 if listener.connected.is_set() else 0)
    heard = CounterMetricFamily("synthbox_doorbell_notifications", "Adds of other instances "
                                "this instance was notified of (each woke a worker here)",
                                labels=["queue", "instance"])
    for queue, count in sorted(listener.notifications.items()):
        heard.add_metric([queue, engine.instance_id], count)
    yield from (up, heard)


def render(engine: Engine) -> bytes:
    """The text exposition format for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector(engine))  # type: ignore[arg-type]
    return generate_latest(registry)


def describe(engine: Engine) -> dict[str, Any]:
    """The figures `synthbox top` shows (the same sources as the metrics)."""
    return {"queues": engine.overview(), "instances": engine.instances()}
