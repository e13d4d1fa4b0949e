"""Jobs end to end through Redis Sentinel and a three-node Redis Cluster.

Every server here is our own: started on free ports by the fixtures below and killed
by pid at teardown (the Redis on 6379, if any, is never touched).
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from synthbox.jobs.engine import Engine
from tests.conftest import REDIS_SERVER, RedisServer, free_port, wait_for

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
MASTER_NAME = "mymaster"
TAG = "{synthbox.diagnostics}"
QUEUE_KEY = f"huey.redis.{TAG}"
SCHEDULE_KEY = f"huey.schedule.{TAG}"


def info(port: int, section: str) -> dict[str, Any]:
    try:
        with redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2) as client:
            return client.info(section)
    except redis.exceptions.ConnectionError:
        return {}


# -- Sentinel: a master, one replica, one sentinel -------------------------------------------

class SentinelServer:
    """`redis-server sentinel.conf --sentinel` watching MASTER_NAME, stopped by pid."""

    def __init__(self, directory: Path, master_port: int):
        self.directory = directory
        self.port = free_port()
        self.master_port = master_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.directory}\n"
            f"logfile {self.directory / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 2000\n")
        self.process = subprocess.Popen([REDIS_SERVER, str(config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 10, message=f"sentinel on {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2,
                           decode_responses=True)

    def ping(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def master_port_now(self) -> int:
        with self.client() as client:
            return int(client.sentinel_get_master_addr_by_name(MASTER_NAME)[1])

    def discovered_port(self) -> int | None:
        """The master's port as a new redis-py client finds it (it also refuses a master
        the sentinel still flags as down), or None while it finds none."""
        from redis.sentinel import MasterNotFoundError, Sentinel

        try:
            return int(Sentinel([("127.0.0.1", self.port)], socket_timeout=2)
                       .discover_master(MASTER_NAME)[1])
        except MasterNotFoundError:
            return None

    def replicas(self) -> list[dict[str, Any]]:
        with self.client() as client:
            return client.sentinel_slaves(MASTER_NAME)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class SentinelSetup:
    def __init__(self, master: RedisServer, replica: RedisServer, sentinel: SentinelServer):
        self.master = master
        self.replica = replica
        self.sentinel = sentinel
        self.dead_sentinel_port = free_port()  # nothing listens there

    @property
    def url(self) -> str:
        # A dead sentinel first, as when one of several is down: it must cost nothing.
        return f"redis://127.0.0.1:{self.dead_sentinel_port},127.0.0.1:{self.sentinel.port}"


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[SentinelSetup]:
    started: list[RedisServer | SentinelServer] = []
    try:
        # No 5-second wait before the first full sync (Redis 7's diskless-sync default).
        master = RedisServer(tmp_path / "master", None, "--repl-diskless-sync-delay", "0")
        started.append(master)
        master.start()
        replica = RedisServer(tmp_path / "replica", None,
                              "--replicaof", "127.0.0.1", str(master.port))
        started.append(replica)
        replica.start()
        wait_for(lambda: info(replica.port, "replication").get("master_link_status") == "up",
                 10, message="the replica to sync")
        # Started after the replica is attached, so its first INFO of the master lists it.
        sentinel = SentinelServer(tmp_path / "sentinel", master.port)
        started.append(sentinel)
        sentinel.start()
        wait_for(lambda: any(r["port"] == replica.port and r["flags"] == "slave"
                             and r["master-link-status"] == "ok"
                             for r in sentinel.replicas()),
                 10, message="the sentinel to see the replica, linked")
        yield SentinelSetup(master, replica, sentinel)
    finally:
        for server in reversed(started):
            server.stop()


# -- Cluster: three masters, no replicas ------------------------------------------------------

@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    directory = tmp_path_factory.mktemp("cluster")
    nodes: list[RedisServer] = []
    try:
        for _ in range(3):
            port = free_cluster_port()
            node = RedisServer(directory, port, "--cluster-enabled", "yes",
                               "--cluster-config-file", str(directory / f"nodes-{port}.conf"),
                               "--cluster-node-timeout", "2000")
            nodes.append(node)
            node.start()
        subprocess.run([REDIS_CLI, "--cluster", "create",
                        *[f"127.0.0.1:{n.port}" for n in nodes],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=30)
        for node in nodes:
            wait_for(lambda n=node: cluster_ok(n.port), 20,
                     message=f"cluster_state:ok on {node.port}")
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def free_cluster_port() -> int:
    """A free port whose cluster bus port, port + 10000, is a free port too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def cluster_ok(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as client:
        return client.cluster("info").get("cluster_state") == "ok"


@pytest.fixture
def cluster_url(cluster_nodes: list[RedisServer]) -> str:
    for node in cluster_nodes:
        with node.client() as client:
            client.flushall()
    return "redis://" + ",".join(f"127.0.0.1:{n.port}" for n in cluster_nodes)


# -- engines --------------------------------------------------------------------------------

@pytest.fixture
def start_engine(engine_builder: Callable[..., Engine]) -> Callable[..., Engine]:
    """Build Engines on the given Redis settings (see conftest.engine_builder)."""
    return engine_builder


def add_mixed_jobs(engine: Engine) -> tuple[list[str], str]:
    """50 noop jobs (in one bulk add and singly) and one job that fails once, then succeeds."""
    service = engine.service("diagnostics")
    ids = [j["id"] for j in service.add_bulk([{"name": "noop", "data": {"n": n}}
                                              for n in range(40)])]
    ids += [service.add("noop", {"n": n})["id"] for n in range(40, 50)]
    flaky = service.add("fail", {"times": 1}, attempts=2,
                        backoff={"type": "fixed", "delay": 0.2})["id"]
    return ids, flaky


def assert_all_complete(engine: Engine, ids: list[str], flaky: str, delayed: int = 0) -> None:
    service = engine.service("diagnostics")
    wait_for(lambda: all(service.get_job(i)["state"] == "completed" for i in [*ids, flaky]),
             20, message="every job to complete")
    done = service.get_job(flaky)
    assert done["attemptsMade"] == 2
    assert done["returnvalue"] == {"succeededOnAttempt": 2}
    assert [e["attempt"] for e in done["errors"]] == [1]
    gap = done["processedOn"] - done["errors"][0]["finishedOn"]
    assert 200 <= gap < 1500, gap
    stats = service.get_stats()
    assert stats["completed"] == len(ids) + 1
    assert stats["failed"] == stats["waiting"] == stats["active"] == 0
    assert stats["delayed"] == delayed


# -- Sentinel -------------------------------------------------------------------------------

def test_jobs_complete_through_sentinel(sentinel_setup: SentinelSetup,
                                        start_engine: Callable[..., Engine]) -> None:
    master = sentinel_setup.master
    started = time.monotonic()
    engine = start_engine({"redis_url": sentinel_setup.url,
                           "redis_sentinel_name": MASTER_NAME}, workers=False)
    assert engine.readiness() == {"records": "ok", "transport": "ok"}
    assert "Sentinel" in engine.backends()["transport"]

    # No workers yet: the doorbells wait in the master the sentinel named.
    ids, flaky = add_mixed_jobs(engine)
    engine.service("diagnostics").add("noop", {}, delay=3600)
    # The dead sentinel listed first was skipped at once (it used to cost ~3 s a lookup).
    assert time.monotonic() - started < 2.0
    assert engine.queues["diagnostics"].doorbell.healthy
    with master.client() as client:
        wait_for(lambda: client.llen(QUEUE_KEY) >= 1, 5, message="a doorbell in the master")
        assert client.zcard(SCHEDULE_KEY) == 1, "the delayed job's ring is in the master"
    with sentinel_setup.replica.client() as client:
        wait_for(lambda: client.llen(QUEUE_KEY) >= 1, 5, message="the doorbell replicated")

    engine.start_workers()
    assert_all_complete(engine, ids, flaky, delayed=1)


def test_jobs_complete_after_sentinel_failover(sentinel_setup: SentinelSetup,
                                               start_engine: Callable[..., Engine],
                                               caplog: pytest.LogCaptureFixture) -> None:
    master, replica, sentinel = (sentinel_setup.master, sentinel_setup.replica,
                                 sentinel_setup.sentinel)
    sentinel_settings = {"redis_url": sentinel_setup.url, "redis_sentinel_name": MASTER_NAME}
    workers = start_engine(sentinel_settings)
    service = workers.service("diagnostics")
    before = [j["id"] for j in service.add_bulk([{"name": "noop"}] * 10)]
    wait_for(lambda: all(service.get_job(i)["state"] == "completed" for i in before), 10,
             message="jobs before the failover")

    assert master.process is not None
    master.process.send_signal(signal.SIGKILL)
    master.process.wait(10)
    # Adding works while there is no master: the job is recorded, the doorbell waits.
    started = time.monotonic()
    during = [service.add("noop", {"during": n})["id"] for n in range(5)]
    assert time.monotonic() - started < 5, "adding must not hang on the missing master"
    wait_for(lambda: sentinel.master_port_now() == replica.port, 20,
             message="the sentinel to promote the replica")
    wait_for(lambda: info(replica.port, "replication").get("role") == "master", 10,
             message="the replica to become master")
    wait_for(lambda: workers.readiness()["transport"] == "ok", 10,
             message="the engine to reach the new master")
    # The surviving instance listens for doorbells at the promoted replica (a replica is
    # only ever sent BRPOP's effect, RPOP, so any BRPOP call here came from a client).
    wait_for(lambda: command_calls(replica.port, "brpop") > 0, 10,
             message="the workers to wait for doorbells at the new master")

    # A second instance that only adds jobs (like a web-only one) rings the new master,
    # and the surviving workers answer. It starts once a new client can find the master:
    # right after the promotion the sentinel may still flag it, and a client finds none.
    wait_for(lambda: sentinel.discovered_port() == replica.port, 20,
             message="a new client to find the promoted master")
    pushes_before = command_calls(replica.port, "lpush")
    producer = start_engine(sentinel_settings, workers=False)
    ids, flaky = add_mixed_jobs(producer)
    assert producer.queues["diagnostics"].doorbell.healthy
    assert command_calls(replica.port, "lpush") > pushes_before
    assert_all_complete(workers, [*before, *during, *ids], flaky)
    errors = [r for r in caplog.records
              if r.name.startswith("synthbox") and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def command_calls(port: int, command: str) -> int:
    stats = info(port, "commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


# -- Cluster --------------------------------------------------------------------------------

def test_jobs_complete_through_cluster(cluster_url: str, cluster_nodes: list[RedisServer],
                                       start_engine: Callable[..., Engine]) -> None:
    engine = start_engine({"redis_url": cluster_url, "redis_cluster_mode": True},
                          workers=False)
    assert engine.readiness() == {"records": "ok", "transport": "ok"}
    assert "Cluster" in engine.backends()["transport"]

    ids, flaky = add_mixed_jobs(engine)
    engine.service("diagnostics").add("noop", {}, delay=3600)
    # Every key of the queue is hash-tagged into one slot, held by one node.
    owner = engine.redis.get_node_from_key(QUEUE_KEY)
    assert engine.redis.keyslot(QUEUE_KEY) == engine.redis.keyslot(SCHEDULE_KEY) \
        == engine.redis.keyslot(engine.limiter.key("diagnostics"))
    keys = {}
    for node in cluster_nodes:
        with node.client() as client:
            keys[node.port] = {k.decode() for k in client.keys("*")}
    assert keys == {n.port: ({QUEUE_KEY, SCHEDULE_KEY} if n.port == owner.port else set())
                    for n in cluster_nodes}

    engine.start_workers()
    assert_all_complete(engine, ids, flaky, delayed=1)


def test_rate_limit_holds_through_cluster(cluster_url: str,
                                          start_engine: Callable[..., Engine]) -> None:
    engine = start_engine({"redis_url": cluster_url, "redis_cluster_mode": True},
                          queues={"diagnostics": {"rate_limit_max": 5,
                                                  "rate_limit_duration": 1.0}})
    service = engine.service("diagnostics")
    ids = [j["id"] for j in service.add_bulk([{"name": "noop", "data": {"n": n}}
                                              for n in range(10)])]
    wait_for(lambda: all(service.get_job(i)["state"] == "completed" for i in ids), 10,
             message="rate-limited jobs to complete")
    started = sorted(service.get_job(i)["processedOn"] for i in ids)
    # No 1-second window holds more than 5 starts: any 6 in a row span at least 1000 ms.
    spans = [started[i + 5] - started[i] for i in range(len(started) - 5)]
    assert min(spans) >= 1000, (spans, started)
    # ... and the limiter did not hold them back much longer than it must (two windows).
    assert started[-1] - started[0] < 2500, started
    assert engine.redis.exists(engine.limiter.key("diagnostics"))
