"""The email queue against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import time

import pytest

from synthbox.app import email_service
from synthbox.errors import InputError, UnknownReference
from tests.conftest import Records, Serve, remember_secret, wait_for
from tests.smtp_server import SmtpServer

FAST = {"email": {"backoff_delay": 0.3, "rate_limit_max": 1000}}


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def mailer(engine_builder, smtp_url, queues=None, **settings):
    engine = engine_builder({"smtp_url": smtp_url, "mail_from": "app@synthbox.test", **settings},
                            queues or FAST)
    return engine, email_service(engine)


def test_a_sent_email_arrives_whole(smtp, engine_builder):
    engine, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    sent = emails.send({"to": ["ann@example.com"], "cc": "bob@example.com",
                        "bcc": ["cat@example.com"], "subject": "Quarterly report",
                        "text": "plain words", "html": "<p>rich words</p>",
                        "headers": {"X-Campaign": "q4"}, "replyTo": "help@synthbox.test"})
    assert sent["state"] == "queued" and sent["messageId"].startswith("<")
    wait_for(lambda: emails.get(sent["id"])["state"] == "sent", message="sent")
    done = emails.get(sent["id"])
    assert done["serverReply"].startswith("250") and done["attemptsMade"] == done["attempts"] == 1
    [received] = smtp.messages
    message = received["message"]
    assert sorted(received["rcpt"]) == ["ann@example.com", "bob@example.com",
                                        "cat@example.com"]
    assert message["Subject"] == "Quarterly report"
    assert message["To"] == "ann@example.com" and message["Cc"] == "bob@example.com"
    assert message["Bcc"] is None, "Bcc never travels in the headers"
    assert message["X-Campaign"] == "q4" and message["Reply-To"] == "help@synthbox.test"
    assert message["Message-ID"] == done["messageId"]
    assert message.get_body(("plain",)).get_content().strip() == "plain words"
    assert message.get_body(("html",)).get_content().strip() == "<p>rich words</p>"
    job = engine.service("email").get_job(done["jobId"])
    assert job["returnvalue"] == {"success": True, "messageId": done["messageId"]}
    assert job["data"] == {"queueId": done["id"], "priority": 0, "userId": None}


def test_starttls_with_a_self_signed_certificate_and_auth(engine_builder, tmp_path):
    remember_secret("s3cret-pass")
    server = SmtpServer(tls_dir=tmp_path, users={"mailer": "s3cret-pass"}).start()
    try:
        url = f"smtp+starttls://mailer:s3cret-pass@localhost:{server.port}"
        engine, emails = mailer(engine_builder, url, smtp_ca_file=str(server.cert))
        sent = emails.send({"to": "ann@example.com", "subject": "tls", "text": "hello"})
        wait_for(lambda: emails.get(sent["id"])["state"] == "sent", message="sent over TLS")
        assert len(server.messages) == 1
        assert server.messages[0]["message"]["Subject"] == "tls"
        engine.stop(timeout=5)
    finally:
        server.stop()


def test_priority_mail_goes_first_and_scheduled_mail_waits(smtp, engine_builder):
    engine, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}",
                            {"email": {"concurrency": 1, "rate_limit_max": 1000}})
    engine.service("email").pause()
    low = [emails.send({"to": "a@example.com", "subject": f"low {i}", "text": "x"})
           for i in range(3)]
    high = emails.send({"to": "a@example.com", "subject": "urgent", "text": "x", "priority": 10})
    later = emails.send({"to": "a@example.com", "subject": "later", "text": "x",
                         "sendAt": (time.time() + 1.5) * 1000})
    engine.service("email").resume()
    wait_for(lambda: len(smtp.messages) == 5, message="five emails")
    subjects = [m["message"]["Subject"] for m in smtp.messages]
    assert subjects[0] == "urgent" and subjects[-1] == "later"
    arrived = {m["message"]["Subject"]: m["at"] for m in smtp.messages}
    assert arrived["later"] >= later["sendAt"] / 1000
    assert {e["id"] for e in low} | {high["id"]}


def test_a_550_fails_at_once_after_one_attempt(smtp, engine_builder):
    engine, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    sent = emails.send({"to": "reject-me@example.com", "subject": "x", "text": "x"})
    wait_for(lambda: emails.get(sent["id"])["state"] == "failed", message="failed")
    done = emails.get(sent["id"])
    assert done["attempts"] == 1 and "550" in done["lastError"]
    job = engine.service("email").get_job(done["jobId"])
    assert job["state"] == "failed" and job["attemptsMade"] == 1
    assert smtp.messages == []


def test_smtp_down_retries_with_backoff_then_fails_and_back_in_time_sends(engine_builder,
                                                                          smtp):
    port = smtp.port
    smtp.stop()
    engine, emails = mailer(engine_builder, f"smtp://localhost:{port}",
                            {"email": {"backoff_delay": 0.4, "rate_limit_max": 1000}})
    lost = emails.send({"to": "a@example.com", "subject": "lost", "text": "x"})
    wait_for(lambda: emails.get(lost["id"])["state"] == "failed", 20, message="failed")
    # the email is marked failed inside the last attempt; the job's own failure, with
    # that attempt's error, is written when the attempt returns
    job_id = emails.get(lost["id"])["jobId"]
    wait_for(lambda: engine.service("email").get_job(job_id)["state"] == "failed", 10,
             message="the job failed")
    job = engine.service("email").get_job(job_id)
    assert job["attemptsMade"] == 3 and len(job["errors"]) == 3
    gaps = [b["startedOn"] - a["finishedOn"] for a, b in zip(job["errors"], job["errors"][1:],
                                                             strict=False)]
    assert 400 <= gaps[0] < 1400 and 800 <= gaps[1] < 1800, gaps
    assert "ConnectionRefusedError" in emails.get(lost["id"])["lastError"]

    saved = emails.send({"to": "a@example.com", "subject": "saved", "text": "x"})
    wait_for(lambda: emails.get(saved["id"])["attempts"] >= 1, message="first attempt")
    revived = SmtpServer(port=port).start()
    try:
        wait_for(lambda: emails.get(saved["id"])["state"] == "sent", 20, message="sent")
        assert [m["message"]["Subject"] for m in revived.messages] == ["saved"]
    finally:
        engine.stop(timeout=5)  # closes its SMTP connections before the server goes
        revived.stop()


def test_a_suppressed_address_never_reaches_the_server(smtp, engine_builder):
    _, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    emails.suppress("blocked@example.com")
    emails.suppress("@spam.example")
    gone = emails.send({"to": ["blocked@example.com", "x@spam.example"], "subject": "no",
                        "text": "x"})
    assert gone["state"] == "suppressed" and gone["jobId"] is None
    partial = emails.send({"to": ["blocked@example.com", "ok@example.com"], "subject": "yes",
                           "text": "x"})
    wait_for(lambda: emails.get(partial["id"])["state"] == "sent", message="sent")
    assert [m["rcpt"] for m in smtp.messages] == [["ok@example.com"]]


@pytest.mark.parametrize(("payload", "field"), [
    ({"to": "a@example.com", "subject": "hi\r\nBcc: x@evil.example", "text": "x"}, "subject"),
    ({"to": "a@example.com\r\nBcc: x@evil.example", "subject": "hi", "text": "x"}, "to[0]"),
    ({"to": ["not an address"], "subject": "hi", "text": "x"}, "to[0]"),
    ({"subject": "hi", "text": "x"}, "to"),
    ({"to": "a@example.com", "subject": "hi"}, "text"),
    ({"to": "a@example.com", "subject": "hi", "text": "x", "headers": {"Bcc": "x@e.com"}},
     "headers.Bcc"),
    ({"to": "a@example.com", "subject": "hi", "text": "x", "priority": 11}, "priority"),
])
def test_bad_email_input_names_the_field_and_queues_nothing(smtp, engine_builder, payload,
                                                            field):
    engine, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    with pytest.raises(InputError) as caught:
        emails.send(payload)
    assert caught.value.field == field
    assert emails.list_emails()[0] == []
    assert engine.service("email").get_stats()["total"] == 0


def test_the_api_the_seed_endpoint_and_a_kill_during_a_slow_send(tmp_path, smtp):
    """Over HTTP: send with an email:send token; the seed's curl; and the crash rule."""
    smtp.recorder.delay = 4.0
    env = {"SYNTHBOX_SMTP_URL": f"smtp://localhost:{smtp.port}",
           "SYNTHBOX_MAIL_FROM": "app@synthbox.test",
           "SYNTHBOX_QUEUES": json.dumps({"email": {"stalled_interval": 1.0}})}
    data = tmp_path / "data"
    first = Serve(data, env).start()
    remember_secret(first.token)
    status, reply = first.request("POST", "/api/v1/admin/tokens",
                                  {"name": "mailer", "scopes": ["email:send"]})
    token = reply["data"]["token"]
    remember_secret(token)
    bad = first.request("POST", "/api/v1/emails", {"to": "a@example.com",
                                                   "subject": "hi\r\nBcc: x@evil.example",
                                                   "text": "x"}, token=token)
    assert bad[0] == 400 and bad[1]["error"]["field"] == "subject"
    status, reply = first.request("POST", "/api/v1/emails", {
        "to": "a@example.com", "subject": "slow", "text": "x", "idempotencyKey": "k-1"},
        token=token)
    assert status == 201
    email_id = reply["data"]["id"]
    again = first.request("POST", "/api/v1/emails", {
        "to": "a@example.com", "subject": "slow", "text": "x", "idempotencyKey": "k-1"},
        token=token)
    assert again[1]["data"]["id"] == email_id, "the idempotency key gives the same email"
    assert first.request("GET", "/api/v1/admin/email/queue", token=token)[0] == 403
    path = f"/api/v1/emails/{email_id}"
    wait_for(lambda: first.request("GET", path)[1]["data"]["state"] == "sending",
             message="sending")
    first.kill9()

    second = Serve(data, env).start()
    wait_for(lambda: second.request("GET", path)[1]["data"]["state"] == "uncertain", 30,
             message="uncertain after the crash")
    time.sleep(5)  # the server may well have got it: it must not be sent a second time
    assert len(smtp.messages) <= 1
    smtp.recorder.delay = 0
    before = len(smtp.messages)
    status, reply = second.request("POST", f"{path}/resend")
    assert status == 200
    wait_for(lambda: second.request("GET", path)[1]["data"]["state"] == "sent", 30,
             message="resent")
    assert len(smtp.messages) == before + 1
    assert smtp.messages[-1]["message"]["Message-ID"] == reply["data"]["messageId"]

    # the seed's curl, with a JWT from login
    env_cli = {"SYNTHBOX_DATA_DIR": str(data)}
    from tests.conftest import run_cli

    remember_secret("seed admin pass")
    run_cli("users", "create", "seed", "--role", "admin", env=env_cli,
            input_text="seed admin pass\n")
    jwt_token = second.request("POST", "/api/v1/auth/login",
                               {"name": "seed", "password": "seed admin pass"},
                               token=None)[1]["data"]["accessToken"]
    remember_secret(jwt_token)
    status, reply = second.request("GET", "/api/v1/admin/email/queue", token=jwt_token)
    assert status == 200 and reply["success"] is True
    assert list(reply["data"]) == ["stats", "failedJobs"]
    assert list(reply["data"]["stats"]) == ["waiting", "active", "completed", "failed",
                                           "delayed", "total"]
    assert reply["data"]["stats"]["total"] >= 2
    second.stop()


def test_idempotency_keys_belong_to_their_caller_and_to_one_email(smtp, engine_builder):
    from synthbox.errors import Conflict

    _, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    mail = {"to": "a@example.com", "subject": "once", "text": "x", "idempotencyKey": "k"}
    first = emails.send(mail, caller="alice")
    assert emails.send(mail, caller="alice")["id"] == first["id"]
    assert emails.send(mail, caller="bob")["id"] != first["id"], "bob's key is his own"
    with pytest.raises(Conflict):
        emails.send({**mail, "subject": "another"}, caller="alice")
    assert first["idempotencyKey"] == "k"


def test_partly_refused_recipients_are_recorded(smtp, engine_builder):
    _, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    sent = emails.send({"to": ["ok@example.com", "reject-this@example.com"], "subject": "x",
                        "text": "x"})
    wait_for(lambda: emails.get(sent["id"])["state"] == "sent", message="sent")
    assert "reject-this@example.com: 550" in emails.get(sent["id"])["lastError"]
    assert [m["rcpt"] for m in smtp.messages] == [["ok@example.com"]]


@pytest.mark.parametrize("subject", ["a\u2028b", "a\x0bb", "a\x85b", "tab\tinside"])
def test_every_kind_of_line_break_is_refused(smtp, engine_builder, subject):
    _, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    with pytest.raises(InputError) as caught:
        emails.send({"to": "a@example.com", "subject": subject, "text": "x"})
    assert caught.value.field == "subject"


def test_a_domain_limit_makes_mail_wait_without_using_attempts(smtp, engine_builder):
    engine, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}",
                            email_domain_limits={"gmail.com": [2, 1.0]})
    sent = [emails.send({"to": f"u{i}@gmail.com", "subject": f"g{i}", "text": "x"})
            for i in range(5)]
    other = emails.send({"to": "v@example.com", "subject": "other", "text": "x"})
    wait_for(lambda: all(emails.get(e["id"])["state"] == "sent" for e in [*sent, other]), 30,
             message="all sent")
    gmail = sorted(m["at"] for m in smtp.messages if m["rcpt"][0].endswith("@gmail.com"))
    for i, at in enumerate(gmail):  # arrival times jitter by a send's latency: allow 0.1 s
        assert len([t for t in gmail[i:] if t <= at + 0.9]) <= 2, "over 2 per second"
    assert gmail[-1] - gmail[0] >= 1.8, "five sends at 2 per second take two windows"
    for email in sent:
        job = engine.service("email").get_job(emails.get(email["id"])["jobId"])
        assert job["attemptsMade"] == 1 and job["errors"] == [], "waiting used no attempt"


def test_templates_render_in_a_sandbox(smtp, engine_builder):
    from synthbox.mail.templates import save_template

    _, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    save_template("welcome", "Welcome, {{ name }}", "Hi {{ name }}!",
                  "<p>Hi {{ name }}!</p>")
    sent = emails.send({"to": "a@example.com", "template": "welcome",
                        "variables": {"name": "<Ann>"}})
    wait_for(lambda: emails.get(sent["id"])["state"] == "sent", message="sent")
    message = smtp.messages[0]["message"]
    assert message["Subject"] == "Welcome, <Ann>"
    assert message.get_body(("html",)).get_content().strip() == "<p>Hi &lt;Ann&gt;!</p>"
    with pytest.raises(InputError) as caught:
        emails.send({"to": "a@example.com", "template": "welcome", "variables": {}})
    assert caught.value.field == "variables"
    save_template("nosy", "{{ ''.__class__.__mro__ }}", "x", None)
    with pytest.raises(InputError) as caught:
        emails.send({"to": "a@example.com", "template": "nosy"})
    assert caught.value.field == "variables", "the sandbox refuses attribute tricks"
    with pytest.raises(UnknownReference) as missing:
        emails.send({"to": "a@example.com", "template": "missing"})
    assert missing.value.field == "template" and missing.value.status == 404


def test_failover_to_the_next_server_and_implicit_tls(smtp, engine_builder, tmp_path):
    import ssl

    from aiosmtpd.controller import Controller

    from tests.smtp_server import Recorder, self_signed

    _, dead = mailer(engine_builder, f"smtp://localhost:{smtp.port}")  # warm a free port
    down_port = __import__("tests.conftest", fromlist=["free_port"]).free_port()
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    recorder = Recorder()
    tls_port = __import__("tests.conftest", fromlist=["free_port"]).free_port()
    controller = Controller(recorder, hostname="localhost", port=tls_port, ssl_context=context)
    controller.start()
    try:
        engine, emails = mailer(engine_builder,
                                f"smtp://localhost:{down_port},smtps://localhost:{tls_port}",
                                smtp_ca_file=str(cert), data_dir=tmp_path / "failover")
        sent = emails.send({"to": "a@example.com", "subject": "via tls", "text": "x"})
        wait_for(lambda: emails.get(sent["id"])["state"] == "sent", message="sent")
        assert [m["message"]["Subject"] for m in recorder.messages] == ["via tls"]
        engine.stop(timeout=5)
    finally:
        controller.stop()


def _windows_ok(times: list[float], limit: int, window: float = 1.0) -> bool:
    times = sorted(times)
    return all(len([t for t in times[i:] if t <= start + window]) <= limit
               for i, start in enumerate(times))


def test_100_emails_keep_the_default_limit(smtp, engine_builder):
    engine, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}", {"email": {}})
    sent = emails.send_bulk([{"to": f"u{i}@example.com", "subject": f"m{i}", "text": "x"}
                             for i in range(100)])
    wait_for(lambda: len(smtp.messages) == 100, 60, message="100 emails")
    assert len(sent) == 100
    starts = [r[0] for r in engine.store.execute(  # exact times (processedOn rounds to ms)
        "SELECT started_at FROM job WHERE queue='email'").fetchall()]
    assert _windows_ok(starts, 10), "more than 10 sends started within one second"
    assert max(starts) - min(starts) >= 8.5, "100 at 10/s take about ten seconds"


def test_100_emails_over_the_api_from_two_processes_keep_the_limit(tmp_path, smtp):
    env = {"SYNTHBOX_SMTP_URL": f"smtp://localhost:{smtp.port}",
           "SYNTHBOX_MAIL_FROM": "app@synthbox.test"}
    data = tmp_path / "data"
    one = Serve(data, env).start()
    two = Serve(data, env).start()
    remember_secret(one.token)
    emails = [{"to": f"u{i}@example.com", "subject": f"m{i}", "text": "x"} for i in range(100)]
    status, reply = one.request("POST", "/api/v1/emails/bulk", {"emails": emails})
    assert status == 201 and len(reply["data"]) == 100
    wait_for(lambda: len(smtp.messages) == 100, 60, message="100 emails")

    records = Records(data)
    starts = [r[0] for r in records.query("SELECT started_at FROM job WHERE queue='email'")]
    job_keys = {r[0] for r in records.query("SELECT DISTINCT job_key FROM job")}
    assert len(starts) == 100 and _windows_ok(starts, 10)
    page = one.request("GET", "/api/v1/emails?state=sent&limit=30")[1]["data"]
    assert len(page["emails"]) == 30 and page["nextCursor"] is not None
    assert len(job_keys) == 100, "one job per email"
    one.stop()
    two.stop()


def test_a_4xx_reply_retries_with_the_backoff(smtp, engine_builder):
    from tests.smtp_server import Recorder

    class Busy(Recorder):
        tries = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            Busy.tries += 1
            if Busy.tries == 1:
                return "451 4.3.0 try again later"
            return await super().handle_DATA(server, session, envelope)

    smtp.controller.handler = smtp.recorder = Busy()
    _, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}")
    sent = emails.send({"to": "a@example.com", "subject": "later", "text": "x"})
    wait_for(lambda: emails.get(sent["id"])["state"] == "sent", 20, message="sent")
    assert emails.get(sent["id"])["attempts"] == 2


def test_email_cli(tmp_path, smtp):
    from tests.conftest import run_cli

    env = {"SYNTHBOX_DATA_DIR": str(tmp_path / "d"),
           "SYNTHBOX_SMTP_URL": f"smtp://localhost:{smtp.port}",
           "SYNTHBOX_MAIL_FROM": "app@synthbox.test"}
    test = run_cli("email", "test-smtp", env=env)
    assert test.returncode == 0 and ": ok; offers" in test.stdout
    sent = run_cli("email", "send", "--to", "a@example.com", "--subject", "hi", "--text", "x",
                   "--at", "1h", env=env)
    assert sent.returncode == 0 and sent.stdout.strip().isdigit()
    assert run_cli("email", "suppress", "@blocked.example", env=env).returncode == 0
    bad = run_cli("email", "send", "--to", "x@blocked.example\r\nBcc: y@evil.example",
                  "--subject", "hi", "--text", "x", env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.strip().startswith("Error: --to: ")
    # each error names the flag the user typed (mail/fields.py's table), not the API's field
    for flags, named in ((["--priority", "11"], "--priority: must be a whole number"),
                         (["--from", "nobody"], "--from: "),
                         (["--html-file", __file__, "--subject", "a\r\nBcc: x@y.z"],
                          "--subject: ")):
        bad = run_cli("emails", "send", "--to", "a@example.com", "--subject", "hi", "--text",
                      "x", *flags, env=env)
        assert bad.returncode == 2 and bad.stderr.strip().startswith(f"Error: {named}"), \
            bad.stderr
    bad = run_cli("email", "suppress", "not an address", env=env)
    assert bad.returncode == 2


def test_the_seed_python_service(smtp, engine_builder):
    from synthbox.services import get_email_queue_service

    engine, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}",
                            {"email": {"concurrency": 1, "rate_limit_max": 1000}})
    service = get_email_queue_service(engine)
    engine.service("email").pause()
    record = emails.send({"to": "late@example.com", "subject": "scheduled", "text": "x"})
    first = emails.send({"to": "a@example.com", "subject": "normal", "text": "x"})
    job = service.add_high_priority({"queueId": first["id"], "userId": "user-123"})
    assert job["priority"] == 10 and job["data"]["userId"] == "user-123"
    later = service.schedule_email({"queueId": record["id"]}, time.time() + 3600)
    assert later["state"] == "delayed"
    stats = service.get_stats()
    assert stats["paused"] >= 2 and stats["delayed"] == 1
    emails.suppress("a@example.com")  # suppressed after enqueue: checked again when sending
    engine.service("email").resume()
    wait_for(lambda: emails.get(first["id"])["state"] == "suppressed", message="suppressed")
    assert all(m["rcpt"] != ["a@example.com"] for m in smtp.messages)
    assert service.get_failed_jobs() == [] and service.cleanup(0) >= 0


def test_one_connection_carries_many_emails(smtp, engine_builder):
    _, emails = mailer(engine_builder, f"smtp://localhost:{smtp.port}",
                       {"email": {"concurrency": 1, "rate_limit_max": 1000}})
    sent = emails.send_bulk([{"to": "a@example.com", "subject": f"m{i}", "text": "x"}
                             for i in range(6)])
    wait_for(lambda: all(emails.get(e["id"])["state"] == "sent" for e in sent),
             message="six sent")
    assert len({m["peer"] for m in smtp.messages}) == 1, "a new connection per email"
