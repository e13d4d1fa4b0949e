"""The Faktory listener in cluster mode: every instance listens on faktory_address, a
queue made on first use by one instance takes pushes at once on the others, and every
instance lists the workers of all and passes quiet and stop on."""

from __future__ import annotations

import http.client
import json

import faktory

from tests.conftest import free_port, wait_for
from tests.faktory.helpers import Raw
from tests.host.test_cluster import clusters  # noqa: F401 - the fixture


def test_every_instance_takes_pushes_to_a_queue_made_by_another(clusters):  # noqa: F811
    port = free_port()
    cluster = clusters(2, env={"SYNTHBOX_FAKTORY_ADDRESS": f"127.0.0.1:{port}"})
    pids = {row["pid"] for row in cluster.online(2)}
    assert len(pids) == 2
    for n in range(12):  # a connection each: the kernel spreads them over the instances
        with faktory.connection(f"tcp://127.0.0.1:{port}") as client:
            assert client.queue("add", args=(n,), queue="spread", jid=f"s{n}")
    status, body = cluster.http("GET", "/api/v1/queues/spread/stats")
    assert status == 200 and body["data"]["waiting"] == 12
    assert {row["pid"] for row in cluster.status()} == pids  # nobody crashed
    cluster.stop()


def on_instance(cluster, pid: int) -> http.client.HTTPConnection:
    """A kept-alive HTTP connection that the instance with this pid accepted (the
    instances share the port: new connections until that one takes one)."""
    for _ in range(100):
        conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=10)
        if ask(conn, cluster, "GET", "/healthz")[1]["pid"] == pid:
            return conn
        conn.close()
    raise AssertionError(f"instance {pid} took none of 100 connections")


def ask(conn, cluster, method: str, path: str) -> tuple[int, dict]:
    conn.request(method, path, headers={"Authorization": f"Bearer {cluster.token}"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_a_worker_is_listed_and_quieted_through_either_instance(clusters):  # noqa: F811
    port = free_port()
    cluster = clusters(2, env={"SYNTHBOX_FAKTORY_ADDRESS": f"127.0.0.1:{port}"})
    pids = {row["pid"] for row in cluster.online(2)}
    worker = Raw(port, {"v": 2, "wid": "far-1", "hostname": "box", "pid": 4242,
                        "labels": ["go"]})
    assert worker.command('PUSH {"jid": "held-1", "jobtype": "x", "queue": "far"}') == "OK"
    assert worker.command("FETCH far")["jid"] == "held-1"
    assert worker.command('BEAT {"wid": "far-1"}') == "OK"  # the held job goes with it
    instances = {pid: on_instance(cluster, pid) for pid in pids}

    def listed(pid: int) -> list[dict]:
        status, body = ask(instances[pid], cluster, "GET", "/api/v1/workers")
        assert status == 200, body
        return body["data"]

    for pid in pids:  # whichever instance answers, the worker is there, once
        found = wait_for(lambda pid=pid: listed(pid) or None, 10, message=f"listed by {pid}")
        assert [(w["wid"], w["hostname"], w["pid"], w["jobs"], w["state"])
                for w in found] == [("far-1", "box", 4242, ["held-1"], "running")]
    connected_to = int(found[0]["instances"][0].split("-")[-2])
    assert connected_to in pids
    (other,) = pids - {connected_to}
    status, body = ask(instances[other], cluster, "POST", "/api/v1/workers/far-1/quiet")
    assert status == 200, body
    # the instance the worker is connected to tells it at its next beat, and hands it no job
    wait_for(lambda: worker.command('BEAT {"wid": "far-1"}') == {"state": "quiet"}, 10,
             message="quiet at a beat")
    assert worker.command('PUSH {"jid": "after-quiet", "jobtype": "x", "queue": "far"}') \
        == "OK"
    assert worker.command("FETCH far") is None
    assert all(w["state"] == "quiet" for pid in pids for w in listed(pid))
    entries = ask(instances[other], cluster, "GET", "/api/v1/admin/audit")[1]["data"]
    assert any(e["action"] == "worker.quiet" and e["target"] == "worker:far-1"
               for e in entries["entries"])
    assert worker.command('ACK {"jid": "held-1"}') == "OK"
    worker.send("END")
    worker.close()
    for pid in pids:  # gone from every instance's listing once it left
        wait_for(lambda pid=pid: listed(pid) == [], 10, message=f"gone from {pid}")
    for conn in instances.values():
        conn.close()
    cluster.stop()
