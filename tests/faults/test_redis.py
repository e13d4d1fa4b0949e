"""The Redis doorbell in trouble while jobs are added through the API: restarted without
persistence, down for 60 s, full at maxmemory with noeviction, and a Sentinel failover.
The records are the truth, so every accepted job must still complete; adds stay 201."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import Records, RedisServer, wait_for
from tests.faults.load import Load
from tests.jobs.test_redis_topologies import MASTER_NAME, SentinelServer, info

# every completed job kept: a run past a minute meets retention's first pass, and the
# checks look for every accepted job in the records
QUEUES = {"SYNTHBOX_QUEUES": json.dumps({"diagnostics": {
    "concurrency": 4, "keep_completed_count": 1_000_000}})}


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def readyz(server):
    return server.request("GET", "/readyz", token=None)


def test_redis_restart_without_persistence_under_load(own_redis, serve_factory, tmp_path):
    data = tmp_path / "data"
    server = serve_factory({"REDIS_URL": own_redis.url, **QUEUES}, data)
    records = Records(data)
    load = Load(server).start()
    time.sleep(1.0)
    own_redis.stop()
    own_redis.start()
    back = time.monotonic()
    time.sleep(3.0)
    load.stop()
    load.check()
    assert load.statuses[503] == 0, "a broker restart never refuses an add"
    load.settled(records, 60)
    wait_for(lambda: readyz(server)[1]["degraded"] == [], 15, message="broker back")
    load.report("redis restart (no persistence)", records, load.recovered_after(back))


@pytest.mark.slow
def test_redis_down_60_s(own_redis, serve_factory, tmp_path):
    data = tmp_path / "data"
    server = serve_factory({"REDIS_URL": own_redis.url, **QUEUES}, data)
    records = Records(data)
    load = Load(server, pause=0.05).start()
    time.sleep(1.0)
    own_redis.stop()
    down = time.monotonic()
    wait_for(lambda: readyz(server)[1]["degraded"] == ["broker"], 15, message="degraded")
    status, ready = readyz(server)
    assert status == 200 and ready["status"] == "ready", ready
    # jobs added meanwhile run from the records database
    during = len(load.accepted)
    wait_for(lambda: records.counts().get("completed", 0) >= during, 30, interval=0.2,
             message="jobs completed while Redis is down")
    time.sleep(max(0.0, 60 - (time.monotonic() - down)))
    own_redis.start()
    back = time.monotonic()
    wait_for(lambda: readyz(server)[1]["degraded"] == [], 20, message="broker back")
    time.sleep(1.0)
    load.stop()
    load.check()
    assert load.statuses[503] == 0, load.statuses
    load.settled(records, 60)
    load.report("redis down 60 s", records, time.monotonic() - back,
                recoveryMeans="seconds to /readyz without degraded")


def test_redis_at_maxmemory_noeviction(tmp_path, serve_factory):
    redis_server = RedisServer(tmp_path / "redis", None,
                               "--maxmemory-policy", "noeviction").start()
    try:
        data = tmp_path / "data"
        env = {"REDIS_URL": redis_server.url, **QUEUES}
        serve_factory(env, data)  # the workers
        # adds through an instance without workers: it must ring through Redis
        server = serve_factory({**env, "SYNTHBOX_WORKERS": "false"}, data)
        records = Records(data)
        load = Load(server).start()
        time.sleep(1.0)
        client = redis_server.client()
        # a ballast of 3 MB, then a limit 1 MB below what Redis holds: the doorbells the
        # workers take off their lists cannot bring it back under
        client.mset({f"ballast:{i}": b"x" * 1000 for i in range(3000)})
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used - 1_000_000))
        try:
            client.set("one-more", b"x")
            raise AssertionError("Redis took a write past maxmemory")
        except Exception as exc:
            assert "maxmemory" in str(exc), exc
        full = time.monotonic()
        wait_for(lambda: readyz(server)[1]["checks"]["transport"] != "ok", 15,
                 message="the transport seen refusing writes")
        status, ready = readyz(server)
        assert status == 200 and ready["degraded"] == ["broker"], ready
        time.sleep(2.0)
        client.flushdb()
        freed = time.monotonic()
        wait_for(lambda: readyz(server)[1]["degraded"] == [], 20, message="broker back")
        load.stop()
        load.check()
        assert load.statuses[503] == 0, load.statuses
        load.settled(records, 60)
        load.report("redis maxmemory noeviction", records, time.monotonic() - freed,
                    fullForSeconds=round(freed - full, 1),
                    recoveryMeans="seconds to /readyz without degraded")
        client.close()
    finally:
        redis_server.stop()


def test_sentinel_failover_under_load(tmp_path, serve_factory):
    started: list = []
    try:
        master = RedisServer(tmp_path / "master", None, "--repl-diskless-sync-delay", "0")
        started.append(master.start())
        replica = RedisServer(tmp_path / "replica", None,
                              "--replicaof", "127.0.0.1", str(master.port))
        started.append(replica.start())
        wait_for(lambda: info(replica.port, "replication").get("master_link_status") == "up",
                 10, message="the replica to sync")
        sentinel = SentinelServer(tmp_path / "sentinel", master.port)
        started.append(sentinel.start())
        wait_for(lambda: any(r["port"] == replica.port and r["flags"] == "slave"
                             for r in sentinel.replicas()), 10, message="sentinel sees replica")
        data = tmp_path / "data"
        server = serve_factory({"REDIS_URL": f"redis://127.0.0.1:{sentinel.port}",
                                "REDIS_SENTINEL_NAME": MASTER_NAME, **QUEUES}, data)
        records = Records(data)
        load = Load(server).start()
        time.sleep(1.0)
        assert master.process is not None
        master.process.send_signal(signal.SIGKILL)
        master.process.wait(10)
        killed = time.monotonic()
        wait_for(lambda: sentinel.master_port_now() == replica.port, 20,
                 message="the sentinel to promote the replica")
        wait_for(lambda: readyz(server)[1]["degraded"] == [], 20, message="new master used")
        promoted = time.monotonic()
        time.sleep(1.0)
        load.stop()
        load.check()
        assert load.statuses[503] == 0, load.statuses
        load.settled(records, 60)
        load.report("sentinel failover", records, promoted - killed,
                    recoveryMeans="seconds from kill -9 of the master to the new one in use")
    finally:
        for part in reversed(started):
            part.stop()
