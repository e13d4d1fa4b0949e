"""Issue 23: the security promises in the README, each against real parts."""

from __future__ import annotations

import json
import time

import pytest

from synthbox.app import email_service
from synthbox.errors import InputError
from synthbox.mail.models import Email
from tests.conftest import Serve, remember_secret, run_cli, wait_for
from tests.smtp_server import SmtpServer

FAST = {"email": {"backoff_delay": 0.3, "rate_limit_max": 1000}}

# each decodes to a value holding CR, LF or NUL: q and b words, upper case, a line break
# split over two words, a word inside other text, a long value that folds, an odd charset
INJECTIONS = [
    "=?utf-8?q?Hi=0D=0AFrom:_ceo@bank.example=0D=0AReply-To:_evil@example.com?=",
    "=?utf-8?b?SGkNCkJjYzogZXZpbEBleGFtcGxlLmNvbQ==?=",
    "=?UTF-8?Q?Hi=0d=0aBcc:_evil@example.com?=",
    "=?utf-8?q?Hi=0D?= =?utf-8?q?=0ABcc:_evil@example.com?=",
    "Hello =?utf-8?q?there=0A=0A?=the sender's own body",
    "word " * 40 + "=?utf-8?q?x=0D=0ABcc:_evil@example.com?=",
    "a=?utf-8?q?=0D=0A?=Bcc:evil@example.com",
    "=?utf-8?q?nul=00byte?=",
    "=?iso-8859-1?q?lone=0Dcr?=",
]


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def mailer(engine_builder, smtp, **settings):
    engine = engine_builder({"smtp_url": f"smtp://localhost:{smtp.port}",
                             "mail_from": "app@synthbox.test", **settings}, FAST)
    return engine, email_service(engine)


def received_headers(smtp) -> list[list[tuple[str, str]]]:
    return [list(m["message"].items()) for m in smtp.messages]


# -- 1. mail header injection through encoded words ---------------------------------------

@pytest.mark.parametrize("value", INJECTIONS)
def test_an_encoded_line_break_in_any_header_is_refused(engine_builder, smtp, value):
    engine, emails = mailer(engine_builder, smtp)
    from synthbox.mail.templates import save_template

    save_template("hello", "Hello {{ name }}", "Hi", None)
    attempts = [({"subject": value}, "subject"),
                ({"subject": "ok", "headers": {"X-Campaign": value}}, "headers.X-Campaign"),
                ({"template": "hello", "variables": {"name": value}}, "subject")]
    for extra, field in attempts:
        payload = {"to": "a@example.com", **extra}
        if "template" not in extra:
            payload["text"] = "body"
        with pytest.raises(InputError) as caught:
            emails.send(payload)
        assert caught.value.field == field, extra
    for field in ("from", "to", "replyTo"):
        with pytest.raises(InputError) as caught:
            emails.send({"to": "a@example.com", "subject": "ok", "text": "x",
                         field: "=?utf-8?q?a=0D=0ABcc=3Aevil?=@example.com"})
        assert caught.value.field in (field, f"{field}[0]")
    with pytest.raises(InputError) as caught:
        save_template("evil", value, "x", None)
    assert caught.value.field == "subject"
    ok = emails.send({"to": "a@example.com", "subject": "=?utf-8?q?Caf=C3=A9_au_lait?=",
                      "text": "body", "headers": {"X-Note": "=?utf-8?b?w6ljaG8=?="}})
    wait_for(lambda: emails.get(ok["id"])["state"] == "sent", message="sent")
    [message] = [m["message"] for m in smtp.messages]
    assert message["Subject"] == "Café au lait" and message["X-Note"] == "écho"
    assert message["From"] == "app@synthbox.test" and message["Reply-To"] is None
    assert message["Bcc"] is None
    assert message.get_body(("plain",)).get_content().strip() == "body"
    engine.stop(timeout=5)


@pytest.mark.parametrize("value", INJECTIONS[:4])
def test_a_stored_injected_header_is_never_written_out(engine_builder, smtp, value):
    """A record written before the decoded check (or by any other path) fails to build:
    the generator's policy refuses it whatever the Python patch level."""
    engine, emails = mailer(engine_builder, smtp)
    engine.service("email").pause()
    sent = emails.send({"to": "a@example.com", "subject": "placeholder", "text": "body"})
    Email.update(subject=value, headers=json.dumps({"X-Campaign": value})).where(
        Email.id == int(sent["id"])).execute()
    engine.service("email").resume()
    wait_for(lambda: emails.get(sent["id"])["state"] == "failed", message="failed")
    assert "cannot build the message" in emails.get(sent["id"])["lastError"]
    control = emails.send({"to": "a@example.com", "subject": "after", "text": "body"})
    wait_for(lambda: emails.get(control["id"])["state"] == "sent", message="control sent")
    assert [m["message"]["Subject"] for m in smtp.messages] == ["after"]
    assert all(m["message"]["From"] == "app@synthbox.test" for m in smtp.messages)


def test_the_api_answers_400_naming_the_field_and_the_sink_gets_nothing(tmp_path, smtp):
    env = {"SYNTHBOX_SMTP_URL": f"smtp://localhost:{smtp.port}",
           "SYNTHBOX_MAIL_FROM": "app@synthbox.test"}
    server = Serve(tmp_path / "data", env).start()
    try:
        remember_secret(server.token)
        status, _ = server.request("PUT", "/api/v1/emails/templates/hello",
                                   {"subject": "Hello {{ name }}", "text": "Hi"})
        assert status == 200
        bodies = [({"subject": INJECTIONS[0]}, "subject"),
                  ({"subject": "ok", "headers": {"X-Tag": INJECTIONS[1]}}, "headers.X-Tag"),
                  ({"template": "hello", "variables": {"name": INJECTIONS[3]}}, "subject")]
        for extra, field in bodies:
            body = {"to": "a@example.com", **extra}
            if "template" not in extra:
                body["text"] = "x"
            status, reply = server.request("POST", "/api/v1/emails", body)
            assert status == 400, reply
            assert reply["error"]["field"] == field
            assert "encoded word" in reply["error"]["message"]
        status, reply = server.request("POST", "/api/v1/emails/bulk", {"emails": [
            {"to": "a@example.com", "subject": "fine", "text": "x"},
            {"to": "a@example.com", "subject": INJECTIONS[2], "text": "x"}]})
        assert status == 400 and reply["error"]["field"] == "emails[1].subject"
        status, reply = server.request("GET", "/api/v1/emails")
        assert reply["data"]["emails"] == [], "nothing was recorded"
        assert smtp.messages == []
    finally:
        server.stop()


# -- 2. bounded template rendering --------------------------------------------------------

RUNAWAY_TEMPLATES = {
    # no output at all, 10^10 iterations: only a time budget stops it
    "spin": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    # 30 M characters (1.9 s and 30 MB before the cap)
    "flood": "{% for a in range(100000) %}{% for b in range(30) %}xxxxxxxxxx{% endfor %}"
             "{% endfor %}",
    "range": "{{ range(10 ** 12) | list }}",  # OverflowError: Range too big (was a 500)
    "repeat": "{{ 'x' * 10 ** 7 }}",
    "divide": "{{ 1 // 0 }}",
}


def test_a_runaway_template_is_a_400_naming_the_template_within_the_budget(tmp_path, smtp):
    budget = 3.0  # synthbox.mail.rendering.TIME_BUDGET
    env = {"SYNTHBOX_SMTP_URL": f"smtp://localhost:{smtp.port}",
           "SYNTHBOX_MAIL_FROM": "app@synthbox.test"}
    server = Serve(tmp_path / "data", env).start()
    try:
        remember_secret(server.token)
        for name, source in {**RUNAWAY_TEMPLATES, "fine": "Hi {{ who }}"}.items():
            status, reply = server.request("PUT", f"/api/v1/emails/templates/{name}",
                                           {"subject": "About {{ who }}", "text": source})
            assert status == 200, reply
        for name in RUNAWAY_TEMPLATES:
            started = time.monotonic()
            status, reply = server.request("POST", "/api/v1/emails", {
                "to": "a@example.com", "template": name, "variables": {"who": "Ann"}})
            took = time.monotonic() - started
            assert status == 400, (name, reply)
            assert reply["error"]["field"] == "template", (name, reply)
            assert f"cannot render '{name}'" in reply["error"]["message"]
            assert took < budget + 2, f"{name} took {took:.1f} s"
        status, reply = server.request("POST", "/api/v1/emails", {
            "to": "a@example.com", "template": "fine", "variables": {"who": "Ann"}})
        assert status == 201, reply
        wait_for(lambda: len(smtp.messages) == 1, message="the fine one arrives")
        message = smtp.messages[0]["message"]
        assert message["Subject"] == "About Ann"
        assert message.get_body(("plain",)).get_content().strip() == "Hi Ann"
    finally:
        server.stop()


# -- 3. one outbound policy ----------------------------------------------------------------

def _fire_webhook_alert(engine, url: str) -> str:
    """Make a `waiting` rule fire once and return what its webhook delivery recorded."""
    from synthbox.alerting import rules
    from synthbox.alerting.evaluate import AlertEvaluator
    from synthbox.alerting.models import AlertEvent

    name = f"hook-{AlertEvent.select().count()}"
    rules.create_rule({"name": name, "kind": "waiting", "queue": "diagnostics",
                       "threshold": 0, "webhook": url}, list(engine.queues))
    diagnostics = engine.service("diagnostics")
    diagnostics.pause()  # so the job stays waiting, with or without workers
    if not diagnostics.get_stats()["paused"] + diagnostics.get_stats()["waiting"]:
        diagnostics.add_bulk([{"name": "noop"}])
    AlertEvaluator(engine).check_all()
    event = wait_for(lambda: AlertEvent.get_or_none(
        (AlertEvent.rule == name) & (AlertEvent.delivery != "")), message="delivered")
    return event.delivery


def test_alert_webhooks_go_through_the_outbound_guard(engine_builder):
    from tests.receiver import Receiver

    inside = Receiver()
    elsewhere = Receiver()
    hop = Receiver(redirect=elsewhere.url.replace("127.0.0.1", "127.0.0.2"),
                   redirect_status=307)
    try:
        engine = engine_builder({}, workers=False)
        for url in (inside.url, inside.url.replace("127.0.0.1", "localhost"),
                    "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/x",
                    "http://10.1.2.3:9/x"):
            delivery = _fire_webhook_alert(engine, url)
            assert delivery.startswith("webhook refused: url: "), delivery
            assert "SynthBox calls it only when outbound_allow lists it" in delivery
        assert inside.received == [], "a loopback receiver is never called"

        allowed = engine_builder({"outbound_allow": "127.0.0.1"}, workers=False,
                                 data_dir=engine.settings.data_path)
        assert _fire_webhook_alert(allowed, inside.url) == "webhook answered 200"
        assert inside.received[0]["state"] == "firing"
        assert inside.headers[0]["User-Agent"] == "SynthBox-alerts"
        # an allowed first hop redirects to a loopback address the list does not cover
        delivery = _fire_webhook_alert(allowed, hop.url)
        assert len(hop.received) == 1
        assert delivery.startswith("webhook refused: url: 127.0.0.2 is a loopback"), delivery
    finally:
        for receiver in (inside, elsewhere, hop):
            receiver.stop()


def test_agents_and_webhooks_share_the_allow_list(engine_builder):
    from synthbox.orchestration import projects
    from synthbox.services import get_orchestration_queue_service
    from tests.receiver import Receiver

    agent_end = Receiver({"tasks": []})
    try:
        engine = engine_builder({"outbound_allow": "127.0.0.1"},
                                {"orchestration": {"rate_limit_max": 0, "attempts": 1}})
        service = get_orchestration_queue_service(engine)
        projects.create_project({"slug": "guarded"})
        projects.create_agent("guarded", {"slug": "caller", "kind": "http",
                                          "config": {"url": agent_end.url}})
        run = service.trigger("guarded", {}, "manual")
        wait_for(lambda: engine.find_job(int(run["jobId"]))["state"] == "completed",
                 message="the agent ran")
        assert len(agent_end.received) == 1
        assert _fire_webhook_alert(engine, agent_end.url) == "webhook answered 200"
    finally:
        agent_end.stop()


# -- 5. no secrets in debug logs ----------------------------------------------------------

def test_debug_logs_show_sql_without_values_and_no_secret(tmp_path):
    secrets_used = {"query key": "querykey-5f3e1a9c", "agent header": "header-7c1d2e3f4a",
                    "agent env": "envvalue-9a8b7c6d", "password": "pw-correct-horse-99"}
    for value in secrets_used.values():
        remember_secret(value)
    server = Serve(tmp_path / "data", {"SYNTHBOX_LOG_LEVEL": "debug"}).start()
    try:
        remember_secret(server.token)
        assert server.request("POST", "/api/v1/projects", {"slug": "p1"})[0] == 201
        status, _ = server.request("POST", "/api/v1/projects/p1/agents", {
            "slug": "caller", "kind": "http",
            "config": {"url": f"https://hooks.invalid/x?key={secrets_used['query key']}",
                       "headers": {"X-Api-Key": secrets_used["agent header"]}}})
        assert status == 201
        status, _ = server.request("POST", "/api/v1/projects/p1/agents", {
            "slug": "runner", "kind": "command",
            "config": {"command": ["true"], "env": {"TOKEN": secrets_used["agent env"]}}})
        assert status == 201
        status, hook = server.request("POST", "/api/v1/projects/p1/hooks", {"slug": "h1"})
        secrets_used["hook secret"] = hook["data"]["secret"]
        remember_secret(hook["data"]["secret"])
        assert server.request("POST", "/api/v1/admin/users", {
            "name": "bob", "password": secrets_used["password"], "role": "viewer"})[0] == 201
        status, pair = server.request("POST", "/api/v1/auth/login", {
            "name": "bob", "password": secrets_used["password"]}, token=None)
        assert status == 200
        remember_secret(pair["data"]["accessToken"])
        status, run = server.request("POST", "/api/v1/projects/p1/orchestrations", {})
        assert status == 201, run
        path = f"/api/v1/projects/p1/runs/{run['data']['jobId']}"
        wait_for(lambda: len(server.request("GET", path)[1]["data"]["agentRuns"]) == 2,
                 message="both agents ran")
    finally:
        server.stop()
    output = server.output()
    assert "values not logged]" in output, "debug shows the SQL, without its values"
    leaked = [what for what, value in secrets_used.items() if value in output]
    assert leaked == [], f"in the debug log: {leaked}"
    assert "$argon2" not in output, "no password hash"


# -- 6. no account lockout for everyone -----------------------------------------------------

def _login_from(server, address: str, name: str, password: str) -> tuple[int, float]:
    import http.client

    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/api/v1/auth/login", json.dumps({"name": name, "password": password}),
                 {"Content-Type": "application/json", "X-Forwarded-For": address})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, time.monotonic() - started


def test_a_guesser_locks_out_only_itself_and_others_get_a_growing_delay(tmp_path):
    server = Serve(tmp_path / "data", {"SYNTHBOX_TRUST_PROXY": "true"}).start()
    try:
        remember_secret(server.token)
        right, wrong = "target password 1", "wrong guess 123"
        assert server.request("POST", "/api/v1/admin/users", {
            "name": "target", "password": right, "role": "viewer"})[0] == 201
        attacker = "203.0.113.66"
        assert [_login_from(server, attacker, "target", wrong)[0]
                for _ in range(10)] == [401] * 10
        assert _login_from(server, attacker, "target", wrong)[0] == 429
        assert _login_from(server, attacker, "target", right)[0] == 429, \
            "the guessing address waits, the right password included"
        status, took = _login_from(server, "198.51.100.7", "target", right)
        assert status == 200, "the owner, elsewhere, still signs in"
        assert took >= 0.25, "after 10 failures every address waits a little"
        waits = [_login_from(server, f"192.0.2.{i}", "target", wrong) for i in range(1, 6)]
        assert [status for status, _ in waits] == [401] * 5, "no hard lock elsewhere"
        assert waits[-1][1] > waits[0][1] >= 0.25, f"a growing delay: {waits}"
        status, took = _login_from(server, "198.51.100.8", "target", right)
        assert status == 200 and took >= 0.5
    finally:
        server.stop()


# -- 4. repo-scan stays inside the checkout -------------------------------------------------

def _commit_repo(repo, files: dict, links: dict) -> None:
    import os
    import subprocess

    repo.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "ann@example.com",
           "GIT_COMMITTER_NAME": "Ann", "GIT_COMMITTER_EMAIL": "ann@example.com"}
    for name, content in files.items():
        (repo / name).write_bytes(content)
    for name, target in links.items():
        (repo / name).symlink_to(target)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def _scan(engine_builder, repository: str, **settings):
    """A scan of `repository`, added while its folder was an allowed root: the scan checks
    the path again against the settings it runs with."""
    from pathlib import Path

    from synthbox.orchestration import projects
    from synthbox.services import get_orchestration_queue_service

    engine = engine_builder(settings, {"orchestration": {"rate_limit_max": 0, "attempts": 1}})
    service = get_orchestration_queue_service(engine)
    projects.create_project({"slug": "scanned", "repository": repository},
                            roots=[Path(repository).parent])
    run = service.trigger("scanned", {"jobType": "github_analysis"}, "manual")
    wait_for(lambda: engine.find_job(int(run["jobId"]))["state"] in ("completed", "failed"),
             message="the scan finished")
    return service.get_run("scanned", run["jobId"])


def test_a_pushed_symlink_to_a_host_file_reveals_nothing(engine_builder, tmp_path):
    host_file = tmp_path / "host" / "secret.txt"  # stands for /etc/shadow and the like
    host_file.parent.mkdir()
    host_file.write_bytes(b"TODO TODO FIXME\n" + b"x" * 1_500_000)
    repo = tmp_path / "git" / "repo"
    _commit_repo(repo, {"README.md": b"# r\n", "app.py": b"# TODO: one\n"},
                 {"leak": str(host_file), "leak-dir": str(host_file.parent)})
    found = _scan(engine_builder, str(repo), repository_roots=str(tmp_path / "git"))
    by_kind = {s["detail"]["kind"]: s["detail"] for s in found["suggestions"]}
    assert (by_kind["todo"]["todo"], by_kind["todo"]["fixme"]) == (1, 0)
    assert by_kind["todo"]["files"] == [{"path": "app.py", "count": 1}]
    assert "large-file" not in by_kind, "nothing about the host file's size"
    assert "secret" not in json.dumps(found)


def test_a_local_repository_must_be_under_repository_roots(engine_builder, tmp_path,
                                                           serve_factory):
    repo = tmp_path / "elsewhere" / "repo"
    _commit_repo(repo, {"README.md": b"# r\n"}, {})
    found = _scan(engine_builder, str(repo))  # no repository_roots: no local path
    [agent_run] = found["agentRuns"]
    assert agent_run["status"] == "failed"
    assert "repository: a local path must be under repository_roots" in agent_run["error"]
    assert not (tmp_path / "data" / "repos" / "1" / "checkout").exists(), "nothing cloned"

    server = serve_factory({"SYNTHBOX_REPOSITORY_ROOTS": str(tmp_path / "git")},
                           data_dir=tmp_path / "served")
    remember_secret(server.token)
    link = tmp_path / "git" / "sneaky"
    link.parent.mkdir()
    link.symlink_to(repo.parent)  # under the root by name, outside once resolved
    for repository in (str(repo), f"file://{repo}", str(link / "repo"), "../elsewhere/repo"):
        status, reply = server.request("POST", "/api/v1/projects",
                                       {"slug": "p", "repository": repository})
        assert status == 400 and reply["error"]["field"] == "repository", repository
    inside = tmp_path / "git" / "real"
    _commit_repo(inside, {"README.md": b"# r\n"}, {})
    for slug, repository in (("a", str(inside)), ("b", "https://example.com/r.git"),
                             ("c", "git@example.com:o/r.git")):
        status, reply = server.request("POST", "/api/v1/projects",
                                       {"slug": slug, "repository": repository})
        assert status == 201, reply
    # the rule is the service's: the CLI (and the UI's form) meet it as the API does
    env = {"SYNTHBOX_DATA_DIR": str(tmp_path / "cli"),
           "SYNTHBOX_REPOSITORY_ROOTS": str(tmp_path / "git")}
    refused = run_cli("projects", "create", "q", "--repository", str(repo), env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"Error: repository: a local path must be under repository_roots ({tmp_path / 'git'})"]
    assert run_cli("projects", "create", "q", "--repository", str(inside),
                   env=env).returncode == 0


# -- 7. robustness seen on the way ----------------------------------------------------------

def test_refusals_name_the_real_path_and_405_says_what_is_allowed(tmp_path):
    import urllib.error
    import urllib.request

    server = Serve(tmp_path / "data").start()
    try:
        remember_secret(server.token)
        status, reply = server.request("POST", "/api/v1/queues/orchestration/jobs",
                                       {"name": "orchestrate", "data": {}})
        assert status == 403
        assert "POST /api/v1/projects/{project}/orchestrations" in reply["error"]["message"]
        status, reply = server.request("POST", "/api/v1/queues/email/jobs", {"name": "send"})
        assert status == 403 and "POST /api/v1/emails" in reply["error"]["message"]
        for method, path in (("DELETE", "/api/v1/emails"), ("PUT", "/api/v1/projects"),
                             ("PATCH", "/healthz")):
            request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}",
                                             method=method)
            request.add_header("Authorization", f"Bearer {server.token}")
            try:
                urllib.request.urlopen(request, timeout=10)
                raise AssertionError(f"{method} {path} was accepted")
            except urllib.error.HTTPError as error:
                assert error.code == 405
                allowed = {m.strip() for m in error.headers["Allow"].split(",")}
                assert "GET" in allowed and method not in allowed, (path, allowed)
                assert json.loads(error.read())["error"]["code"] == "method_not_allowed"
    finally:
        server.stop()


def test_the_alert_check_waits_for_a_locked_sqlite_instead_of_failing(engine_builder, caplog):
    import sqlite3
    import threading

    from synthbox.alerting import rules
    from synthbox.alerting.evaluate import AlertEvaluator
    from synthbox.alerting.models import AlertEvent

    engine = engine_builder({}, workers=False)
    rules.create_rule({"name": "backlog", "kind": "waiting", "queue": "diagnostics",
                       "threshold": 0}, list(engine.queues))
    engine.service("diagnostics").add_bulk([{"name": "noop"}])
    held, release = threading.Event(), threading.Event()

    def long_writer() -> None:  # another process's long write (a 15 MB job, a big bulk)
        conn = sqlite3.connect(engine.settings.data_path / "synthbox.db", timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(30)
        conn.rollback()
        conn.close()

    writer = threading.Thread(target=long_writer)
    writer.start()
    held.wait(10)
    threading.Timer(12.0, release.set).start()  # past SQLite's 10 s busy timeout
    try:
        with caplog.at_level("WARNING", logger="synthbox.alerts"):
            AlertEvaluator(engine).check_all()
    finally:
        release.set()
        writer.join(30)
    assert [(e.rule, e.state) for e in AlertEvent.select()] == [("backlog", "firing")]
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], \
        caplog.text


def test_a_renderer_process_killed_from_outside_is_replaced(engine_builder, smtp):
    import os
    import signal

    from synthbox.mail import rendering
    from synthbox.mail.templates import save_template

    engine, emails = mailer(engine_builder, smtp)
    save_template("again", "Again {{ n }}", "body", None)
    emails.send({"to": "a@example.com", "template": "again", "variables": {"n": 1}})
    started = [w for w in list(rendering.renderer()._idle.queue) if w is not None]
    assert started, "the first render started a rendering process"
    for worker in started:
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(5)
    sent = emails.send({"to": "a@example.com", "template": "again", "variables": {"n": 2}})
    assert sent["subject"] == "Again 2"
