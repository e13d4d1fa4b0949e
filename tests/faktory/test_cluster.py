"""The Faktory listener in cluster mode: every instance listens on faktory_address, and a
queue made on first use by one instance takes pushes at once on the others."""

from __future__ import annotations

import faktory

from tests.conftest import free_port
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
