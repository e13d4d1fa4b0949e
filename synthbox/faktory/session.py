"""One client connection speaking Faktory's protocol (version 2), as contribsys/faktory's
server/commands.go defines it: HI, HELLO, then PUSH, PUSHB, FETCH, ACK, FAIL, BEAT, INFO,
FLUSH, QUEUE, MUTATE and END. Every bad input gets an error reply and a log line; the
connection goes on (only a wrong password ends it, as in Faktory)."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from synthbox.actors import Actor
from synthbox.errors import InputError, SynthBoxError
from synthbox.faktory import admin, wire
from synthbox.faktory.jobs import NotUnique, RemoteJobs
from synthbox.faktory.workers import WorkerRegistry
from synthbox.jobs.engine import Engine
from synthbox.logs import event

log = logging.getLogger("synthbox.faktory")

FETCH_WAIT = 2.0  # seconds a FETCH waits for a job, as Faktory's


class Refused(Exception):
    """A command refused: its error reply, and whether the connection ends."""

    def __init__(self, code: str, message: str, close: bool = False):
        super().__init__(message)
        self.code, self.message, self.close = code, message, close


def _json(payload: str, what: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise Refused("ERR", f"{what}: invalid JSON ({exc})") from None


class Session:
    def __init__(self, engine: Engine, jobs: RemoteJobs, workers: WorkerRegistry,
                 password: str, stream: BinaryIO, send: Callable[[bytes], None],
                 address: str, stopping: Callable[[], bool]):
        self.engine, self.jobs, self.workers = engine, jobs, workers
        self.password, self.stream, self.send = password, stream, send
        self.address, self.stopping = address, stopping
        self.salt = secrets.token_hex(8)
        self.iterations = 5000 + secrets.randbelow(5000)
        self.greeted = False
        self.wid: str | None = None
        self.actor = Actor("faktory", address)
        self.commands: dict[str, Callable[[str], bytes | None]] = {
            "HELLO": self.hello, "PUSH": self.push, "PUSHB": self.push_bulk,
            "FETCH": self.fetch, "ACK": self.ack, "FAIL": self.fail, "BEAT": self.beat,
            "INFO": lambda _: wire.bulk(admin.info(engine, self.jobs, workers)),
            "FLUSH": lambda _: self._admin(admin.flush, engine),
            "QUEUE": lambda rest: self._admin(admin.queue_command, engine, rest),
            "MUTATE": lambda rest: self._admin(admin.mutate, engine,
                                               _json(rest, "MUTATE")),
        }

    def run(self) -> None:
        hi: dict[str, Any] = {"v": 2}
        if self.password:
            hi.update(i=self.iterations, s=self.salt)
        # compact, as Go writes it: the Node client reads the greeting up to its first space
        self.send(wire.simple("HI " + json.dumps(hi, separators=(",", ":"))))
        try:
            while not self.stopping():
                try:
                    line = wire.read_line(self.stream)
                except wire.LineTooLong:
                    self._refuse(Refused("ERR", f"command line longer than {wire.MAX_LINE} "
                                                "bytes"), "?")
                    continue
                if line is None or not self.serve_line(line):
                    return
        finally:
            if self.wid is not None:
                self.workers.disconnected(self.wid)

    def serve_line(self, raw: bytes) -> bool:
        """Answer one command line; False when the connection ends."""
        verb = "?"
        try:
            try:
                line = raw.decode()
            except UnicodeDecodeError:
                raise Refused("ERR", "command is not UTF-8 text") from None
            verb, _, rest = line.partition(" ")
            if verb == "END":
                return False
            if verb not in self.commands:
                raise Refused("ERR", f"Unknown command {verb[:40]!r}")
            if not self.greeted and verb != "HELLO":
                raise Refused("ERR", "HELLO first: the connection is not authenticated")
            reply = self.commands[verb](rest)
            if reply is not None:
                self.send(reply)
            return True
        except Refused as refused:
            self._refuse(refused, verb)
            return not refused.close
        except NotUnique as exc:
            self._refuse(Refused("NOTUNIQUE", f"Job not unique: {exc}"), verb)
        except SynthBoxError as exc:
            self._refuse(Refused("ERR", str(exc)), verb)
        except Exception as exc:  # a fault of ours: said to the client, logged in full
            log.exception("faktory %s from %s failed", verb[:40], self.address)
            self.send(wire.error("ERR", f"internal error: {type(exc).__name__}"))
        return True

    def _refuse(self, refused: Refused, verb: str) -> None:
        log.warning("faktory %s from %s refused: %s %s", verb[:40], self.address,
                    refused.code, refused.message,
                    extra=event("faktory refused", command=verb[:40], address=self.address,
                                code=refused.code, wid=self.wid))
        self.send(wire.error(refused.code, refused.message))

    def _admin(self, call: Callable[..., Any], *args: Any) -> bytes:
        answer = call(*args, actor=self.actor)
        return wire.OK if answer is None else wire.bulk(answer)

    # -- commands -----------------------------------------------------------------------

    def hello(self, payload: str) -> bytes:
        if self.greeted:
            raise Refused("ERR", "HELLO was sent already")
        hello = _json(payload, "HELLO")
        if not isinstance(hello, dict):
            raise Refused("ERR", "HELLO: must be a JSON object")
        if self.password:
            # a client without "v" (the PyPI faktory 1.0 client) hashes once
            iterations = self.iterations if hello.get("v") else 1
            expected = wire.password_hash(self.password, self.salt, iterations)
            given = hello.get("pwdhash")
            if not isinstance(given, str) or not hmac.compare_digest(given, expected):
                raise Refused("ERR", "Invalid password", close=True)
        wid = hello.get("wid")
        if wid is not None:
            if not isinstance(wid, str) or not 1 <= len(wid) <= 255:
                raise Refused("ERR", "HELLO: wid must be a string of 1 to 255 characters")
            labels: list[Any] = hello.get("labels") or []
            labels = labels if isinstance(labels, list) else []
            pid: int = hello.get("pid") or 0
            pid = pid if isinstance(pid, int) else 0
            self.workers.hello(wid, str(hello.get("hostname") or "")[:255], pid,
                               [str(label)[:64] for label in labels[:20]], "faktory",
                               self.address)
            self.wid = wid
            self.actor = Actor(f"faktory:{wid}", self.address)
        self.greeted = True
        return wire.OK

    def push(self, payload: str) -> bytes:
        self.jobs.push([_json(payload, "PUSH")], self.actor)
        return wire.OK

    def push_bulk(self, payload: str) -> bytes:
        jobs = _json(payload, "PUSHB")
        if not isinstance(jobs, list) or not jobs:
            raise Refused("ERR", "PUSHB: must be a non-empty JSON array of jobs")
        return wire.bulk(self.jobs.push(jobs, self.actor) if len(jobs) > 1
                         else self._one_of_bulk(jobs[0]))

    def _one_of_bulk(self, job: Any) -> dict[str, str]:
        try:
            self.jobs.push([job], self.actor)
        except SynthBoxError as exc:
            jid = job.get("jid") if isinstance(job, dict) else None
            return {str(jid if isinstance(jid, str) else 0): str(exc)}
        return {}

    def fetch(self, rest: str) -> bytes | None:
        queues = rest.split()
        if not queues:
            raise Refused("ERR", "FETCH: name at least one queue")
        if self.told_to_stop_fetching():
            time.sleep(FETCH_WAIT)  # a quiet or stopping worker gets no more jobs
            return wire.NULL
        job = self.jobs.fetch_within(queues, FETCH_WAIT, self.told_to_stop_fetching)
        if job is None:
            return wire.NULL
        if self.told_to_stop_fetching():  # quieted while this FETCH waited
            self.jobs.give_back(job["jid"])
            return wire.NULL
        try:
            self.send(wire.bulk(job))
        except OSError:  # the client left while it waited: the job is not lost with it
            self.jobs.give_back(job["jid"])
            raise
        self.workers.hold(self.wid, job["jid"])
        return None

    def told_to_stop_fetching(self) -> bool:
        return self.stopping() or (self.wid is not None and bool(self.workers.requested(self.wid)))

    def _jid(self, payload: str, what: str) -> dict[str, Any]:
        body = _json(payload, what)
        if not isinstance(body, dict) or not isinstance(body.get("jid"), str):
            raise Refused("ERR", f"{what}: must be a JSON object with a jid")
        return body

    def ack(self, payload: str) -> bytes:
        body = self._jid(payload, "ACK")
        result = body.get("result")
        if not self.jobs.ack(body["jid"], None if result is None else json.dumps(result),
                             confirm=False):
            log.info("faktory ACK of %s, which no worker holds", body["jid"][:64])
        self.workers.release(body["jid"])
        return wire.OK

    def fail(self, payload: str) -> bytes:
        body = self._jid(payload, "FAIL")
        trace = body.get("backtrace") or []
        if not isinstance(trace, list):
            raise InputError("backtrace", "must be a JSON array of lines")
        if not self.jobs.fail(body["jid"], str(body.get("errtype") or "")[:255],
                              str(body.get("message") or "")[:10000],
                              [str(line) for line in trace[:1000]]):
            log.info("faktory FAIL of %s, which no worker holds", body["jid"][:64])
        self.workers.release(body["jid"])
        return wire.OK

    def beat(self, payload: str) -> bytes:
        body = _json(payload, "BEAT")
        if not isinstance(body, dict) or not isinstance(body.get("wid"), str):
            raise Refused("ERR", "BEAT: must be a JSON object with the wid")
        rss = body.get("rss_kb")
        state = self.workers.beat(body["wid"], str(body.get("current_state") or ""),
                                  rss if isinstance(rss, int) else None)
        return wire.bulk({"state": state}) if state else wire.OK
