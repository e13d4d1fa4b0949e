"""Faktory's protocol by hand: every command, and every kind of malformed input answered
with an error reply and a log line while the server goes on."""

from __future__ import annotations

import json
import time

import pytest

from synthbox.faktory.wire import password_hash
from tests.conftest import Serve, free_port
from tests.faktory.helpers import Raw, faktory_serve

HELLO = {"hostname": "test", "wid": "w-proto", "pid": 1, "labels": ["raw"], "v": 2}


QUEUES = """
[queues.limited]
handler = "remote"
rate_limit = { max = 1, per = 3600 }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    serve, port = faktory_serve(tmp_path_factory.mktemp("proto"), QUEUES)
    yield serve, port
    serve.stop()


@pytest.fixture
def client(server):
    raw = Raw(server[1], HELLO)
    yield raw
    raw.close()


def job(jid: str, queue: str = "proto", **more) -> str:
    return json.dumps({"jid": jid, "jobtype": "work", "args": [jid], "queue": queue, **more})


def api_job(serve, queue: str, jid: str) -> dict:
    status, body = serve.request("GET", f"/api/v1/queues/{queue}/jobs/{jid}")
    assert status == 200, body
    return body["data"]


def still_serving(serve, port: int) -> None:
    assert serve.process.poll() is None
    raw = Raw(port, HELLO)
    assert raw.command("INFO")["server"]["description"] == "SynthBox"
    raw.close()


def test_hi_offers_version_2_without_a_salt_when_no_password_is_set(server):
    raw = Raw(server[1])
    assert raw.greeting == 'HI {"v":2}'
    raw.close()


def test_push_fetch_ack(server, client):
    serve, _ = server
    assert client.command("PUSH " + job("a1", custom={"trace": "x"}, priority=7)) == "OK"
    assert api_job(serve, "proto", "a1")["state"] == "waiting"
    fetched = client.command("FETCH proto")
    assert fetched["jid"] == "a1" and fetched["jobtype"] == "work"
    assert fetched["args"] == ["a1"] and fetched["custom"] == {"trace": "x"}
    assert fetched["queue"] == "proto" and fetched["priority"] == 7
    assert fetched["reserve_for"] == 1800 and fetched["retry"] == 25
    assert api_job(serve, "proto", "a1")["state"] == "active"
    assert client.command(json.dumps({"jid": "a1"}).join(["ACK ", ""])) == "OK"
    assert api_job(serve, "proto", "a1")["state"] == "completed"


def test_fetch_takes_the_queues_in_the_order_given(client):
    assert client.command("PUSH " + job("o-low", queue="later")) == "OK"
    assert client.command("PUSH " + job("o-high", queue="first")) == "OK"
    assert client.command("FETCH first later")["jid"] == "o-high"
    assert client.command("FETCH first later")["jid"] == "o-low"
    for jid in ("o-high", "o-low"):
        assert client.command(f'ACK {{"jid": "{jid}"}}') == "OK"


def test_fetch_of_an_empty_or_unknown_queue_answers_null_after_the_wait(client):
    started = time.monotonic()
    assert client.command("FETCH nothing-here proto") is None
    assert time.monotonic() - started >= 1.9


def test_a_push_wakes_a_waiting_fetch(server, client):
    pusher = Raw(server[1], {"v": 2})
    client.send("FETCH wake")
    time.sleep(0.3)
    assert pusher.command("PUSH " + job("w1", queue="wake")) == "OK"
    assert client.reply()["jid"] == "w1"
    assert client.command('ACK {"jid": "w1"}') == "OK"
    pusher.close()


def test_a_duplicate_jid_is_refused_with_notunique(server, client):
    assert client.command("PUSH " + job("dup")) == "OK"
    code, message = client.command("PUSH " + job("dup"))
    assert code == "error" and message.startswith("NOTUNIQUE")
    assert "faktory PUSH from 127.0.0.1 refused: NOTUNIQUE" in server[0].output()


def test_pushb_takes_the_good_jobs_and_names_the_bad(server, client):
    batch = [json.loads(job(f"b{n}", queue="bulk")) for n in range(3)]
    batch.append({"jid": "b-bad", "jobtype": "", "queue": "bulk"})
    refused = client.command("PUSHB " + json.dumps(batch))
    assert list(refused) == ["b-bad"] and "jobtype" in refused["b-bad"]
    assert server[0].request("GET", "/api/v1/queues/bulk/stats")[1]["data"]["waiting"] == 3


def test_fail_keeps_the_backtrace_and_retries_with_faktory_backoff(server, client):
    serve, _ = server
    assert client.command("PUSH " + job("f1", queue="fails", retry=3)) == "OK"
    assert client.command("FETCH fails")["jid"] == "f1"
    failure = {"jid": "f1", "errtype": "RuntimeError", "message": "it broke",
               "backtrace": ["app.rb:10 in work", "app.rb:3 in main"]}
    before = time.time()
    assert client.command("FAIL " + json.dumps(failure)) == "OK"
    found = api_job(serve, "fails", "f1")
    assert found["state"] == "delayed"
    assert found["failedReason"] == "RuntimeError: it broke"
    assert found["errors"][0]["stacktrace"] == "app.rb:10 in work\napp.rb:3 in main"
    # Faktory's formula after the first failure: 0^4 + 15 + rand(10) * 1 seconds
    assert before + 15 - 0.01 <= found["runAt"] / 1000 <= time.time() + 25  # runAt: ms
    assert found["backoff"]["type"] == "faktory"


def test_retry_0_fails_at_once_and_retry_minus_1_drops_the_job(server, client):
    serve, _ = server
    for jid, retry in (("r0", 0), ("rdrop", -1)):
        assert client.command("PUSH " + job(jid, queue="once", retry=retry)) == "OK"
        assert client.command("FETCH once")["jid"] == jid
        assert client.command(f'FAIL {{"jid": "{jid}", "message": "no"}}') == "OK"
    assert api_job(serve, "once", "r0")["state"] == "failed"
    assert serve.request("GET", "/api/v1/queues/once/jobs/rdrop")[0] == 404


def test_at_delays_a_job(server, client):
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert client.command("PUSH " + job("later", queue="delayed", at=at)) == "OK"
    assert api_job(server[0], "delayed", "later")["state"] == "delayed"


def test_beat_answers_ok_and_info_reports_the_queues(client):
    assert client.command('BEAT {"wid": "w-proto", "rss_kb": 1234}') == "OK"
    info = client.command("INFO")
    assert info["faktory"]["queues"]["bulk"] == 3
    assert info["faktory"]["total_queues"] >= 1


def test_queue_pause_resume_and_remove(server, client):
    assert client.command("PUSH " + job("p1", queue="pausable")) == "OK"
    assert client.command("QUEUE PAUSE pausable") == "OK"
    assert client.command("FETCH pausable") is None
    assert client.command("QUEUE RESUME pausable") == "OK"
    assert client.command("FETCH pausable")["jid"] == "p1"
    assert client.command("PUSH " + job("p2", queue="pausable")) == "OK"
    assert client.command("QUEUE REMOVE pausable") == "OK"
    assert server[0].request("GET", "/api/v1/queues/pausable/jobs/p2")[0] == 404
    code, message = client.command("QUEUE SHUFFLE pausable")
    assert code == "error" and "PAUSE|RESUME|REMOVE" in message


def test_mutate_kills_requeues_and_clears(server, client):
    serve, _ = server
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert client.command("PUSH " + job("m1", queue="mutated", at=at)) == "OK"
    assert client.command('MUTATE {"cmd": "kill", "target": "scheduled", '
                          '"filter": {"jids": ["m1"]}}') == "OK"
    assert api_job(serve, "mutated", "m1")["state"] == "failed"
    assert client.command('MUTATE {"cmd": "requeue", "target": "dead", '
                          '"filter": {"jobtype": "work"}}') == "OK"
    assert api_job(serve, "mutated", "m1")["state"] == "waiting"
    assert client.command('MUTATE {"cmd": "kill", "target": "retries"}') == "OK"
    code, message = client.command('MUTATE {"cmd": "explode", "target": "dead"}')
    assert code == "error" and "cmd" in message


def test_push_to_a_queue_run_inside_synthbox_is_refused(client):
    code, message = client.command("PUSH " + job("e1", queue="email"))
    assert code == "error" and "not a remote queue" in message


@pytest.mark.parametrize("line, says", [
    (b"FETCH proto", "HELLO first"),
    (b"PUSH " + job("early").encode(), "HELLO first"),
])
def test_a_command_before_hello_is_refused(server, line, says):
    serve, port = server
    raw = Raw(port)
    code, message = raw.command(line)
    assert code == "error" and says in message
    assert raw.command("HELLO " + json.dumps(HELLO)) == "OK"  # the connection goes on
    raw.close()
    assert f"faktory {line.split()[0].decode()} from 127.0.0.1 refused" in serve.output()


@pytest.mark.parametrize("line, says", [
    (b"SHOUT hello", "Unknown command"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"*1", "Unknown command"),  # RESP arrays are not Faktory's commands
    (b"PUSH {not json", "PUSH: invalid JSON"),
    (b"PUSH [1, 2]", "job: must be a JSON object"),
    (b'PUSH {"jid": "x1", "queue": "proto"}', "jobtype"),
    (b'PUSH {"jid": "x2", "jobtype": "w", "queue": "Bad Name!"}', "queue"),
    (b'PUSH {"jid": "x3", "jobtype": "w", "args": "no"}', "args"),
    (b'PUSH {"jid": "x4", "jobtype": "w", "at": "tomorrow"}', "at"),
    (b'PUSH {"jid": "x5", "jobtype": "w", "retry": 5000}', "retry"),
    (b"PUSHB {}", "PUSHB"),
    (b"ACK nope", "ACK: invalid JSON"),
    (b'FAIL {"message": "no jid"}', "jid"),
    (b"BEAT {}", "wid"),
    (b"FETCH", "at least one queue"),
    (b"HELLO {}", "HELLO was sent already"),
])
def test_malformed_input_gets_an_error_reply_and_a_log_line(server, client, line, says):
    serve, port = server
    code, message = client.command(line)
    assert code == "error" and message.startswith(("ERR ", "NOTUNIQUE ")), message
    assert says in message
    assert "refused: ERR" in serve.output()
    assert client.command('BEAT {"wid": "w-proto"}') == "OK"  # the same connection goes on
    still_serving(serve, port)


def test_a_16_mb_line_is_refused_and_the_connection_goes_on(server, client):
    serve, port = server
    client.sock.sendall(b"PUSH " + b"x" * (16 * 1024 * 1024) + b"\r\n")
    code, message = client.reply()
    assert code == "error" and "longer than" in message
    assert client.command('BEAT {"wid": "w-proto"}') == "OK"
    still_serving(serve, port)


def test_end_closes_the_connection(server):
    raw = Raw(server[1], HELLO)
    raw.send("END")
    with pytest.raises(ConnectionError):
        raw.reply()
    raw.close()


def test_flush_deletes_the_remote_queues_jobs(server, client):
    assert client.command("PUSH " + job("gone", queue="flushed")) == "OK"
    assert client.command("FLUSH") == "OK"
    assert server[0].request("GET", "/api/v1/queues/flushed/jobs/gone")[0] == 404


def test_passwords_hashed_as_each_client_version_does(tmp_path):
    serve, port = faktory_serve(tmp_path, password="s3cret")
    try:
        raw = Raw(port)
        hi = json.loads(raw.greeting[3:])
        assert hi["v"] == 2 and hi["i"] >= 1 and hi["s"]
        good = password_hash("s3cret", hi["s"], hi["i"])
        assert raw.command("FETCH x")[1].startswith("ERR HELLO first")
        assert raw.command("HELLO " + json.dumps({"v": 2, "pwdhash": good})) == "OK"
        raw.close()
        old = Raw(port)  # no "v": the PyPI faktory 1.0 client hashes once
        salt = json.loads(old.greeting[3:])["s"]
        once = password_hash("s3cret", salt, 1)
        assert old.command("HELLO " + json.dumps({"pwdhash": once})) == "OK"
        old.close()
        bad = Raw(port)
        code, message = bad.command("HELLO " + json.dumps({"v": 2, "pwdhash": "0" * 64}))
        assert code == "error" and message == "ERR Invalid password"
        with pytest.raises(ConnectionError):
            bad.reply()  # a wrong password ends the connection, as in Faktory
        bad.close()
        still_serving_with = Raw(port)
        salt = json.loads(still_serving_with.greeting[3:])
        assert still_serving_with.command("HELLO " + json.dumps(
            {"v": 2, "pwdhash": password_hash("s3cret", salt["s"], salt["i"])})) == "OK"
        still_serving_with.close()
    finally:
        serve.stop()


def test_a_public_address_without_a_password_stops_the_start(tmp_path):
    serve = Serve(tmp_path / "data", {"SYNTHBOX_FAKTORY_ADDRESS": f"0.0.0.0:{free_port()}"})
    serve.start(wait=False)
    assert serve.process.wait(30) == 2
    assert "faktory_password: required" in serve.output()


def test_a_job_added_through_the_api_is_fetched_by_a_faktory_worker(server, client):
    serve, _ = server
    assert client.command("PUSH " + job("makes-the-queue", queue="from-api")) == "OK"
    assert client.command("FETCH from-api")["jid"] == "makes-the-queue"
    status, body = serve.request("POST", "/api/v1/queues/from-api/jobs",
                                 {"name": "report", "data": {"month": 5}})
    assert status == 201, body
    job_id = body["data"]["id"]
    fetched = client.command("FETCH from-api")
    assert fetched["jid"] == job_id and fetched["jobtype"] == "report"
    assert fetched["args"] == [{"month": 5}]
    assert client.command(f'ACK {{"jid": "{job_id}"}}') == "OK"
    assert api_job(serve, "from-api", job_id)["state"] == "completed"


def test_the_queue_rate_limit_applies_at_fetch(client):
    for n in range(2):
        assert client.command("PUSH " + job(f"rl{n}", queue="limited")) == "OK"
    assert client.command("FETCH limited")["jid"] == "rl0"
    assert client.command("FETCH limited") is None  # 1 per hour: the second waits
    assert client.command('ACK {"jid": "rl0"}') == "OK"


def test_a_client_that_leaves_during_fetch_loses_no_job(server):
    serve, port = server
    leaving = Raw(port, HELLO)
    leaving.send("FETCH leaving")
    time.sleep(0.2)
    leaving.close()
    pusher = Raw(port, {"v": 2})
    assert pusher.command("PUSH " + job("stays", queue="leaving")) == "OK"
    time.sleep(2.5)  # past the FETCH's wait
    assert api_job(serve, "leaving", "stays")["state"] == "waiting"
    assert pusher.command("FETCH leaving")["jid"] == "stays"
    assert pusher.command('ACK {"jid": "stays"}') == "OK"
    pusher.close()
