"""One client connection speaking Faktory's protocol (version 2), as contribsys/faktory's
server/commands.go defines it: HI, HELLO, then PUSH, PUSHB, FETCH, ACK, FAIL, BEAT, INFO,
FLUSH, QUEUE, MUTATE and END. Every bad input gets an error reply and a log line; the
connection goes on (only a wrong password ends it, as in Faktory).

A session does no I/O: it answers a command line with its reply, or with the work the
listener's loop does together for every connection that asked in the same round (pushes
stored in one transaction, acknowledgements in one, fetches claimed in one), or with a
slow command to run aside (INFO, FLUSH, QUEUE, MUTATE)."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any, NamedTuple

from synthbox.actors import Actor
from synthbox.errors import InputError, SynthBoxError
from synthbox.faktory import admin, wire
from synthbox.faktory.fields import PushedJob
from synthbox.faktory.jobs import NotUnique, RemoteJobs
from synthbox.faktory.workers import WorkerRegistry
from synthbox.jobs.engine import Engine
from synthbox.jobs.rows import NewJob
from synthbox.logs import event

log = logging.getLogger("synthbox.faktory")

FETCH_WAIT = 2.0  # seconds a FETCH waits for a job, as Faktory's


class Refused(Exception):
    """A command refused: its error reply, and whether the connection ends."""

    def __init__(self, code: str, message: str, close: bool = False):
        super().__init__(message)
        self.code, self.message, self.close = code, message, close


class Push(NamedTuple):
    """PUSH or PUSHB: the jobs checked and made rows, stored with the round's others."""

    raw: list[Any]
    ready: list[tuple[PushedJob, NewJob]]
    refused: dict[str, str]
    bulk: bool


class Ack(NamedTuple):
    jid: str
    result: str | None  # JSON text


class Fetch(NamedTuple):
    queues: tuple[str, ...]
    claims: bool  # False for a worker told to quiet: it waits and gets nothing


class Slow(NamedTuple):
    """A command that may take long (it runs aside; the loop serves the others)."""

    verb: str
    call: Callable[[], bytes]


class Close(NamedTuple):
    """The connection ends, after `reply` when there is one."""

    reply: bytes


Work = Push | Ack | Fetch | Slow


def _json(payload: str, what: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise Refused("ERR", f"{what}: invalid JSON ({exc})") from None


class Session:
    def __init__(self, engine: Engine, jobs: RemoteJobs, workers: WorkerRegistry,
                 password: str, address: str):
        self.engine, self.jobs, self.workers = engine, jobs, workers
        self.password, self.address = password, address
        self.salt = secrets.token_hex(8)
        self.iterations = 5000 + secrets.randbelow(5000)
        self.greeted = False
        self.wid: str | None = None
        self.actor = Actor("faktory", address)
        self.commands: dict[str, Callable[[str], bytes | Work]] = {
            "HELLO": self.hello, "PUSH": self.push, "PUSHB": self.push_bulk,
            "FETCH": self.fetch, "ACK": self.ack, "FAIL": self.fail, "BEAT": self.beat,
            "INFO": lambda _: Slow("INFO", lambda: wire.bulk(
                admin.info(engine, self.jobs, workers))),
            "FLUSH": lambda _: self._admin("FLUSH", admin.flush, engine),
            "QUEUE": lambda rest: self._admin("QUEUE", admin.queue_command, engine, rest),
            "MUTATE": lambda rest: self._admin("MUTATE", admin.mutate, engine,
                                               _json(rest, "MUTATE")),
        }

    def greeting(self) -> bytes:
        hi: dict[str, Any] = {"v": 2}
        if self.password:
            hi.update(i=self.iterations, s=self.salt)
        # compact, as Go writes it: the Node client reads the greeting up to its first space
        return wire.simple("HI " + json.dumps(hi, separators=(",", ":")))

    def closed(self) -> None:
        """The connection is gone."""
        if self.wid is not None:
            self.workers.disconnected(self.wid)
            self.wid = None

    def answer(self, raw: bytes) -> bytes | Work | Close:
        """What one command line gets: its reply, the work to do for it, or the end."""
        verb = "?"
        try:
            try:
                line = raw.decode()
            except UnicodeDecodeError:
                raise Refused("ERR", "command is not UTF-8 text") from None
            verb, _, rest = line.partition(" ")
            if verb == "END":
                return Close(b"")
            if verb not in self.commands:
                raise Refused("ERR", f"Unknown command {verb[:40]!r}")
            if not self.greeted and verb != "HELLO":
                raise Refused("ERR", "HELLO first: the connection is not authenticated")
            return self.commands[verb](rest)
        except Exception as exc:
            return self.failed(verb, exc)

    def failed(self, verb: str, exc: BaseException) -> bytes | Close:
        """The error reply for a command that raised `exc` (logged)."""
        if isinstance(exc, NotUnique):
            return self.refuse(Refused("NOTUNIQUE", f"Job not unique: {exc}"), verb)
        if isinstance(exc, SynthBoxError):
            return self.refuse(Refused("ERR", str(exc)), verb)
        if isinstance(exc, Refused):
            reply = self.refuse(exc, verb)
            return Close(reply) if exc.close else reply
        # a fault of ours: said to the client, logged in full
        log.error("faktory %s from %s failed", verb[:40], self.address, exc_info=exc)
        return wire.error("ERR", f"internal error: {type(exc).__name__}")

    def refuse(self, refused: Refused, verb: str) -> bytes:
        log.warning("faktory %s from %s refused: %s %s", verb[:40], self.address,
                    refused.code, refused.message,
                    extra=event("faktory refused", command=verb[:40], address=self.address,
                                code=refused.code, wid=self.wid))
        return wire.error(refused.code, refused.message)

    def _admin(self, verb: str, call: Callable[..., Any], *args: Any) -> Slow:
        def run() -> bytes:
            answer = call(*args, actor=self.actor)
            return wire.OK if answer is None else wire.bulk(answer)
        return Slow(verb, run)

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

    def push(self, payload: str) -> Push:
        raw = [_json(payload, "PUSH")]
        return Push(raw, *self.jobs.prepare(raw, self.actor), bulk=False)

    def push_bulk(self, payload: str) -> Push:
        raw = _json(payload, "PUSHB")
        if not isinstance(raw, list) or not raw:
            raise Refused("ERR", "PUSHB: must be a non-empty JSON array of jobs")
        if len(raw) > 1:
            return Push(raw, *self.jobs.prepare(raw, self.actor), bulk=True)
        try:  # one job in a PUSHB: its refusal is in the reply, as with several
            return Push(raw, *self.jobs.prepare(raw, self.actor), bulk=True)
        except SynthBoxError as exc:
            jid = raw[0].get("jid") if isinstance(raw[0], dict) else None
            return Push(raw, [], {str(jid if isinstance(jid, str) else 0): str(exc)}, True)

    def pushed(self, push: Push, refused: dict[str, str]) -> bytes | Close:
        """The reply to a push once its jobs are stored (`refused`: {jid: why})."""
        if push.bulk:
            return wire.bulk(refused)
        try:
            self.jobs.outcome(push.raw, refused)
        except NotUnique as exc:
            return self.failed("PUSH", exc)
        return wire.OK

    def fetch(self, rest: str) -> Fetch:
        queues = rest.split()
        if not queues:
            raise Refused("ERR", "FETCH: name at least one queue")
        return Fetch(tuple(queues), not self.told_to_stop_fetching())

    def told_to_stop_fetching(self) -> bool:
        return self.wid is not None and bool(self.workers.requested(self.wid))

    def handed(self, job: dict[str, Any]) -> None:
        """A fetched job was sent to this worker."""
        self.workers.hold(self.wid, job["jid"])

    def _jid(self, payload: str, what: str) -> dict[str, Any]:
        body = _json(payload, what)
        if not isinstance(body, dict) or not isinstance(body.get("jid"), str):
            raise Refused("ERR", f"{what}: must be a JSON object with a jid")
        return body

    def ack(self, payload: str) -> Ack:
        body = self._jid(payload, "ACK")
        result = body.get("result")
        return Ack(body["jid"], None if result is None else json.dumps(result))

    def acked(self, ack: Ack, held: bool) -> bytes:
        if not held:
            log.info("faktory ACK of %s, which no worker holds", ack.jid[:64])
        self.workers.release(ack.jid)
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
