"""What the listener's single loop must get right for its clients: commands sent together
answered in order, a reply bigger than the socket takes at once, a client that does not
read, many connections at once, and a slow command that leaves the others served."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tests.faktory.helpers import Raw, faktory_serve

HELLO = {"hostname": "test", "wid": "w-loop", "pid": 1, "v": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    serve, port = faktory_serve(tmp_path_factory.mktemp("loop"))
    yield serve, port
    serve.stop()


def job(jid: str, queue: str, args: list | None = None) -> str:
    return json.dumps({"jid": jid, "jobtype": "work", "args": args or [jid], "queue": queue})


def test_commands_sent_together_are_answered_in_order(server):
    raw = Raw(server[1], HELLO)
    raw.sock.sendall(("PUSH " + job("p1", "piped") + "\r\nPUSH " + job("p2", "piped")
                      + "\r\nFETCH piped\r\nACK {\"jid\": \"p1\"}\r\nFETCH piped\r\n")
                     .encode())
    assert raw.reply() == "OK"
    assert raw.reply() == "OK"
    assert raw.reply()["jid"] == "p1"
    assert raw.reply() == "OK"
    assert raw.reply()["jid"] == "p2"
    raw.close()


def test_a_job_larger_than_the_socket_buffers_arrives_whole(server):
    raw = Raw(server[1], HELLO)
    big = ["x" * 1024] * 4096  # a 4 MB job: its FETCH reply is written in many parts
    assert raw.command("PUSH " + job("big", "large", big)) == "OK"
    fetched = raw.command("FETCH large")
    assert fetched["jid"] == "big" and fetched["args"] == big
    assert raw.command('ACK {"jid": "big"}') == "OK"
    raw.close()


def test_a_client_that_does_not_read_holds_up_no_other(server):
    port = server[1]
    stuck = Raw(port, HELLO)
    big = ["y" * 1024] * 6144
    assert stuck.command("PUSH " + job("unread", "stuck", big)) == "OK"
    stuck.send("FETCH stuck")  # its 6 MB reply waits in the server: the client reads none
    other = Raw(port, {"v": 2})
    for n in range(50):
        assert other.command("PUSH " + job(f"o{n}", "moving")) == "OK"
        assert other.command("FETCH moving")["jid"] == f"o{n}"
        assert other.command(json.dumps({"jid": f"o{n}"}).join(["ACK ", ""])) == "OK"
    assert stuck.reply()["args"] == big  # and it gets its reply whole when it reads
    other.close()
    stuck.close()


def test_two_hundred_connections_at_once(server):
    port = server[1]
    replies: list[object] = []

    def client(n: int) -> None:
        raw = Raw(port, {"v": 2})
        replies.append(raw.command("PUSH " + job(f"c{n}", "crowd")))
        raw.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert replies == ["OK"] * 200
    status, body = server[0].request("GET", "/api/v1/queues/crowd/stats")
    assert status == 200 and body["data"]["waiting"] == 200


def test_a_fetch_waits_while_other_connections_are_answered(server):
    port = server[1]
    waiting = Raw(port, HELLO)
    waiting.send("FETCH quiet-queue")  # waits up to 2 s for a job that does not come
    other = Raw(port, {"v": 2})
    assert other.command("INFO")["server"]["description"] == "SynthBox"
    assert other.command("PUSH " + job("meanwhile", "elsewhere")) == "OK"
    assert waiting.reply() is None
    other.close()
    waiting.close()


def test_a_half_sent_command_is_completed_by_the_next_packet(server):
    raw = Raw(server[1], HELLO)
    line = ("PUSH " + job("halves", "split") + "\r\n").encode()
    raw.sock.sendall(line[:20])
    raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Event().wait(0.2)  # the first half is read alone
    raw.sock.sendall(line[20:])
    assert raw.reply() == "OK"
    raw.close()
