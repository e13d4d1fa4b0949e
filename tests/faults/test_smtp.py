"""The SMTP server in trouble while emails are sent through the API: down for a while,
slow, answering 4xx, answering 5xx (a real aiosmtpd server, tests/smtp_server.py). Every
accepted email ends sent or failed; none is sent twice; the API never answers 5xx."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tests.conftest import Records, remember_secret, wait_for
from tests.faults.load import FIGURES, Load
from tests.smtp_server import Recorder, SmtpServer

EMAIL = {"to": "a@example.com", "subject": "fault", "text": "x"}
FINAL = ("sent", "failed")


def start(serve_factory, tmp_path, port: int, **queue):
    env = {"SYNTHBOX_SMTP_URL": f"smtp://localhost:{port}",
           "SYNTHBOX_MAIL_FROM": "app@synthbox.test",
           "SYNTHBOX_QUEUES": json.dumps({"email": {
               "backoff_delay": 0.5, "attempts": 5, "rate_limit_max": 1000, **queue}})}
    server = serve_factory(env, tmp_path / "data")
    remember_secret(server.token)
    return server, Records(tmp_path / "data")


def settled(records: Records, ids: list[str], timeout: float = 60) -> dict[str, str]:
    marks = ",".join(f"'{i}'" for i in ids)

    def states() -> dict[str, str] | None:
        rows = dict(records.query(f"SELECT id, state FROM email WHERE id IN ({marks})"))
        assert len(rows) == len(ids), "an accepted email is missing from the records"
        return rows if all(s in FINAL for s in rows.values()) else None

    return wait_for(states, timeout, interval=0.25, message="every accepted email final")


def sent_once(smtp: SmtpServer) -> Counter[str]:
    ids = Counter(str(m["message"]["Message-ID"]) for m in smtp.messages)
    twice = {k: n for k, n in ids.items() if n > 1}
    assert not twice, f"emails sent more than once: {twice}"
    return ids


def figures(name: str, load: Load, states: dict[str, str], smtp: SmtpServer,
            recovery: float | None) -> None:
    FIGURES[name] = {"accepted": len(load.accepted), "sent": list(states.values()).count("sent"),
                     "failed": list(states.values()).count("failed"),
                     "sentTwice": 0, "refused503": load.statuses[503],
                     "recoverySeconds": None if recovery is None else round(recovery, 2)}
    print(f"\nFAULT {name}: {json.dumps(FIGURES[name])}")


def test_smtp_down_for_5_s(serve_factory, tmp_path):
    smtp = SmtpServer().start()
    server, records = start(serve_factory, tmp_path, smtp.port)
    load = Load(server, EMAIL, path="/api/v1/emails", pause=0.05).start()
    time.sleep(1.0)
    smtp.stop()
    time.sleep(5.0)
    smtp = SmtpServer(port=smtp.port).start()
    back = time.time()
    time.sleep(1.0)
    load.stop()
    try:
        load.check()
        states = settled(records, [str(i) for i in load.accepted])
        assert set(states.values()) == {"sent"}, Counter(states.values())
        sent_once(smtp)
        # the first message the revived server took, counted from its start
        figures("smtp down 5 s", load, states, smtp, min(m["at"] for m in smtp.messages) - back)
    finally:
        smtp.stop()


def test_smtp_slow_replies(serve_factory, tmp_path):
    smtp = SmtpServer().start()
    smtp.recorder.delay = 2.0
    try:
        server, records = start(serve_factory, tmp_path, smtp.port)
        load = Load(server, EMAIL, path="/api/v1/emails", pause=0.05, limit=20).start()
        wait_for(lambda: len(load.accepted) >= 20, 30, message="20 emails accepted")
        load.stop()
        load.check()
        states = settled(records, [str(i) for i in load.accepted], 120)
        assert set(states.values()) == {"sent"}
        sent_once(smtp)
        figures("smtp slow (2 s a message)", load, states, smtp, None)
    finally:
        smtp.stop()


@pytest.mark.parametrize("reply", ["451 4.3.0 try again later", "554 5.7.1 rejected"])
def test_smtp_answers_4xx_or_5xx(reply, serve_factory, tmp_path):
    refusing = {"on": True}

    class Refusing(Recorder):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            if refusing["on"]:
                return reply
            return await super().handle_DATA(server, session, envelope)

    smtp = SmtpServer().start()
    smtp.controller.handler = smtp.recorder = Refusing()
    try:
        server, records = start(serve_factory, tmp_path, smtp.port)
        load = Load(server, EMAIL, path="/api/v1/emails", pause=0.05, limit=15).start()
        wait_for(lambda: len(load.accepted) >= 15, 30, message="15 emails accepted")
        load.stop()
        time.sleep(1.0)
        refusing["on"] = False
        back = time.time()
        load.check()
        states = settled(records, [str(i) for i in load.accepted])
        sent_once(smtp)
        if reply.startswith("4"):  # temporary: retried with the backoff, then sent
            assert set(states.values()) == {"sent"}, Counter(states.values())
        else:  # permanent: failed after one attempt, never retried
            assert set(states.values()) == {"failed"}, Counter(states.values())
            attempts = records.query("SELECT MAX(attempts_made) FROM job WHERE queue='email'")
            assert attempts[0][0] == 1
        figures(f"smtp {reply[:3]}", load, states, smtp, None if reply.startswith("5") else
                max(m["at"] for m in smtp.messages) - back)
    finally:
        smtp.stop()
