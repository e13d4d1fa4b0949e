"""The supervisor of `synthbox start`: binds the HTTP port once, runs N `serve` children
on it, replaces the ones that crash (with backoff), grow past `max_memory_restart` or
stop heartbeating, scales on command or on the queues' backlog, and reloads one child
at a time so that no request or job is dropped."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from synthbox.cluster_settings import ClusterOptions, instance_count
from synthbox.config import SETTINGS, Settings
from synthbox.host.cluster.child import Child, instance_logger
from synthbox.host.cluster.control import ControlServer
from synthbox.host.notify import notify, start_watchdog
from synthbox.host.serve import StartError, listen
from synthbox.threads import start_thread

log = logging.getLogger("synthbox.cluster")

READY_WITHIN = 60.0  # seconds a new child has to report ready during a reload


class Slot:
    """A place for one child: restarts and backoff belong to the slot, not the process."""

    def __init__(self, number: int):
        self.number = number
        self.child: Child | None = None
        self.state = "starting"
        self.restarts = 0
        self.unstable = 0  # crashes at start in a row
        self.restart_at = 0.0
        self.replace_after = 0.0  # a failed replacement is not tried again at once


class Supervisor:
    def __init__(self, settings: Settings, options: ClusterOptions):
        self.settings = settings
        self.options = options
        self.data_path = settings.data_path
        self.state_dir = self.data_path / "run"
        self.sock = listen(settings.host, settings.port)
        self.slots: list[Slot] = []
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.started_at = time.time()
        self.env = self._child_environment()
        self._scaler: Any = None

    def _child_environment(self) -> dict[str, str]:
        """What a child needs to run with the same settings as this supervisor."""
        import json

        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        for setting in SETTINGS:
            source = self.settings.sources.get(setting.name, "")
            if source == "command line" or setting.name == "data_dir":
                value = self.settings.values[setting.name]
                if setting.name == "data_dir":
                    value = str(self.data_path)
                env[setting.env_names[0]] = (json.dumps(value) if isinstance(value, dict | list)
                                             else str(value).lower() if isinstance(value, bool)
                                             else str(value))
        if self.settings.config_file:
            env["SYNTHBOX_CONFIG"] = str(self.settings.config_file)
        env["SYNTHBOX_LOG_FILE"] = ""  # their output is captured into instance logs
        env.update(self.options.env)
        return env

    # -- children -------------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> Child:
        assert self.options.log_dir is not None
        logger = instance_logger(self.options.log_dir, slot.number, self.options.log_max_bytes,
                                 self.options.log_backups)
        child = Child(slot.number, {**self.env, "SYNTHBOX_INSTANCE_SLOT": str(slot.number)},
                      self.sock.fileno(), self.state_dir, logger)
        log.info("instance %d: started pid %d", slot.number, child.pid)
        return child

    def _add_slot(self) -> Slot:
        numbers = {s.number for s in self.slots}
        slot = Slot(next(n for n in range(len(numbers) + 1) if n not in numbers))
        slot.child = self._spawn(slot)
        self.slots.append(slot)
        return slot

    def _retire(self, child: Child) -> None:
        """Stop a child gracefully (it finishes or hands back its jobs), then forget it."""
        child.terminate()
        if not child.wait(self.settings.shutdown_timeout + 10):
            log.warning("instance %d: pid %d did not stop; killed", child.slot, child.pid)
            child.kill()
            child.wait(5)
        child.forget()

    def _replace(self, slot: Slot, reason: str) -> bool:
        """Start a new child for the slot, wait until it serves, then retire the old one."""
        old = slot.child
        log.info("instance %d: replacing pid %s (%s)", slot.number,
                 old.pid if old else "-", reason)
        new = self._spawn(slot)
        deadline = time.monotonic() + READY_WITHIN
        while not new.ready():
            if not new.alive() or time.monotonic() > deadline or self.stopping.is_set():
                log.error("instance %d: the new pid %d did not come up; keeping pid %s",
                          slot.number, new.pid, old.pid if old else "-")
                new.kill()
                new.wait(5)
                return False
            time.sleep(0.1)
        slot.child = new
        slot.state = "online"
        slot.restarts += 1
        if old is not None:
            self._retire(old)
        return True

    # -- commands -------------------------------------------------------------------------

    def scale(self, target: int | str, reason: str = "command") -> int:
        """To `target` instances, or by it when it is "+N" or "-N"."""
        with self.lock:
            if isinstance(target, str):
                target = len(self.slots) + int(target)
            target = max(1, min(target, 64))
            while len(self.slots) < target:
                self._add_slot()
            while len(self.slots) > target:
                slot = max(self.slots, key=lambda s: s.number)
                self.slots.remove(slot)
                if slot.child is not None:
                    slot.state = "stopping"
                    self._retire(slot.child)
            log.info("scaled to %d instance(s) (%s)", target, reason)
            return target

    def reload(self) -> dict[str, Any]:
        """One child at a time: the new one serves before the old one stops."""
        with self.lock:
            replaced = [self._replace(slot, "reload") for slot in list(self.slots)]
        return {"ok": all(replaced), "replaced": sum(replaced)}

    def restart(self) -> dict[str, Any]:
        with self.lock:
            for slot in list(self.slots):
                if slot.child is not None:
                    self._retire(slot.child)
                slot.child = self._spawn(slot)
                slot.state, slot.unstable = "starting", 0
                slot.restarts += 1
        return {"ok": True}

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for slot in sorted(self.slots, key=lambda s: s.number):
            child = slot.child
            cpu, memory = child.usage() if child and child.alive() else (0.0, 0)
            report = (child.report() if child else None) or {}
            rows.append({"id": slot.number, "pid": child.pid if child else None,
                         "state": slot.state, "restarts": slot.restarts,
                         "uptime": round(time.time() - child.started_at, 1) if child and
                         slot.state == "online" else 0, "cpu": cpu, "memory": memory,
                         "jobsDone": report.get("jobsDone", 0),
                         "instance": report.get("instance")})
        return rows

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """One control-socket request, answered by the command it names."""
        commands: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ping": lambda _: {"ok": True, "pid": os.getpid()},
            "status": lambda _: {"ok": True, "pid": os.getpid(), "instances": self.status(),
                                 "autoscale": self.options.autoscale is not None},
            "scale": self._scale_command,
            "reload": lambda _: self.reload(),
            "restart": lambda _: self.restart(),
            "stop": self._stop_command,
        }
        command = commands.get(str(message.get("command")))
        if command is None:
            return {"ok": False, "error": f"command: unknown {message.get('command')!r}"}
        return command(message)

    def _scale_command(self, message: dict[str, Any]) -> dict[str, Any]:
        value = str(message.get("instances", ""))
        relative = value[:1] in "+-" and value[1:].isascii() and value[1:].isdigit()
        return {"ok": True, "instances": self.scale(value if relative else instance_count(value))}

    def _stop_command(self, _message: dict[str, Any]) -> dict[str, Any]:
        self.stopping.set()
        return {"ok": True}

    # -- keeping them alive ---------------------------------------------------------------

    def check(self) -> None:
        now = time.time()
        options = self.options
        with self.lock:
            for slot in self.slots:
                child = slot.child
                if slot.state == "waiting restart" and now >= slot.restart_at:
                    slot.child, slot.state = self._spawn(slot), "starting"
                    slot.restarts += 1
                    continue
                if child is None or slot.state in ("waiting restart", "errored"):
                    continue
                if not child.alive():
                    self._crashed(slot, child, now)
                elif slot.state == "starting" and child.ready():
                    slot.state = "online"
                    if now - child.started_at >= options.min_uptime:
                        slot.unstable = 0
                elif slot.state == "online":
                    self._check_health(slot, child)

    def _crashed(self, slot: Slot, child: Child, now: float) -> None:
        code = child.process.returncode
        child.forget()
        lived = now - child.started_at
        slot.unstable = slot.unstable + 1 if lived < self.options.min_uptime or \
            slot.state == "starting" else 0
        if slot.unstable > self.options.max_restarts:
            slot.state = "errored"
            log.error("instance %d: crashed %d times in a row at start (last exit code %s); "
                      "not restarting it (a crash loop): see instance-%d.log", slot.number,
                      slot.unstable, code, slot.number)
            return
        delay = min(self.options.restart_delay * 2 ** max(slot.unstable - 1, 0), 30.0)
        slot.state, slot.restart_at = "waiting restart", now + delay
        log.warning("instance %d: pid %d exited with code %s after %.1f s; restarting in "
                    "%.1f s", slot.number, child.pid, code, lived, delay)

    def _check_health(self, slot: Slot, child: Child) -> None:
        age = child.heartbeat_age()
        if age is not None and age > self.options.heartbeat_timeout:
            log.error("instance %d: pid %d silent for %.0f s; replacing it", slot.number,
                      child.pid, age)
            child.terminate()
            if not child.wait(5):
                child.kill()
                child.wait(5)
            child.forget()
            slot.child, slot.state = self._spawn(slot), "starting"
            slot.restarts += 1
            return
        limit = self.options.max_memory_restart
        if limit and time.time() >= slot.replace_after:
            _, memory = child.usage()
            if memory > limit and not self._replace(
                    slot, f"memory {memory >> 20} MB over max_memory_restart {limit >> 20} MB"):
                slot.replace_after = time.time() + 60

    # -- running --------------------------------------------------------------------------

    def run(self, instances: int) -> int:
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            control = ControlServer(self.data_path, self.handle)
        except RuntimeError as exc:
            raise StartError(str(exc)) from None
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        signal.signal(signal.SIGHUP, lambda *_: start_thread("reload", self.reload))
        if self.options.autoscale is not None:
            from synthbox.host.cluster.autoscale import Autoscaler  # the domains: opt-in

            instances = self.options.autoscale.min
            self._scaler = Autoscaler(self, self.options.autoscale)
        with self.lock:
            for _ in range(instances):
                self._add_slot()
        log.info("supervisor pid %d: %d instance(s) on %s:%d; control socket %s",
                 os.getpid(), instances, self.settings.host, self.sock.getsockname()[1],
                 control.path)
        self._notify_when_ready()
        start_watchdog(self.stopping, lambda: any(s.state == "online" for s in self.slots))
        try:
            while not self.stopping.wait(0.25):
                try:
                    self.check()
                    if self._scaler is not None:
                        self._scaler.tick()
                except Exception:  # a database blip, a full disk: log, go on
                    log.exception("supervisor check failed; trying again")
        finally:
            self.shutdown()
            control.close()
        return 0

    def _notify_when_ready(self) -> None:
        def wait() -> None:
            while not self.stopping.is_set():
                with self.lock:
                    up = self.slots and all(s.child and s.child.ready() for s in self.slots)
                if up:
                    notify("READY=1")
                    return
                time.sleep(0.2)

        start_thread("wait-for-children", wait)

    def shutdown(self) -> None:
        """Every child stops (gracefully, then killed); no process is left behind."""
        log.info("stopping %d instance(s)", len(self.slots))
        with self.lock:
            children = [s.child for s in self.slots if s.child is not None]
            for child in children:
                child.terminate()
            deadline = time.monotonic() + self.settings.shutdown_timeout + 10
            for child in children:
                if not child.wait(max(deadline - time.monotonic(), 0.1)):
                    child.kill()
                    child.wait(5)
                child.forget()
        self.sock.close()
        log.info("supervisor stopped")
