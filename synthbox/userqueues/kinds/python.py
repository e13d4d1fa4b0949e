"""The `python` kind: each job calls `function(data)`, a function imported from
`python_path` (`"myapp.jobs:resize"`), and its return value is the result.

`isolation = "thread"` (the default) calls it in the worker thread. `"process"` calls it
in a child process of its own per worker thread, reused from job to job: a crash there,
or a C call that never returns (killed at the job's timeout), costs that child, never
the server; a new one takes its place.
"""

from __future__ import annotations

import importlib
import multiprocessing
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from synthbox.jobs.context import JobContext
from synthbox.jobs.errors import TIMEOUTS_HELD

POLL = 0.25  # seconds between looks at a child (a timeout can stop the wait between)
_IMPORT_LOCK = threading.Lock()


class FunctionFailed(Exception):
    """The function raised, could not be imported, or its process died."""


def load_function(reference: str, python_path: Sequence[str]) -> Callable[..., Any]:
    """`module:function`, imported with `python_path` first on sys.path."""
    module_name, _, attribute = reference.partition(":")
    with _IMPORT_LOCK:
        for folder in reversed(python_path):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise FunctionFailed(f"function: cannot import {module_name!r} "
                                 f"({type(exc).__name__}: {exc})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise FunctionFailed(f"function: {module_name!r} has no function {attribute!r}")
    return function  # type: ignore[no-any-return]


class ThreadCaller:
    """Calls the function in the worker's own thread (imported at the first job)."""

    def __init__(self, config: Mapping[str, Any]):
        self.reference = config["function"]
        self.python_path = list(config.get("python_path") or [])
        self._function: Callable[..., Any] | None = None

    def __call__(self, job: JobContext) -> Any:
        if self._function is None:
            self._function = load_function(self.reference, self.python_path)
        return self._function(job.data)


def _child(reference: str, python_path: list[str], inbox: Connection) -> None:
    """A child process's loop: (data) in, ("ok", value) or ("error", text) out."""
    try:
        function = load_function(reference, python_path)
    except FunctionFailed as exc:
        function, failure = None, str(exc)
    while True:
        try:
            data = inbox.recv()
        except EOFError:
            return
        if function is None:
            inbox.send(("error", failure))
            continue
        try:
            inbox.send(("ok", function(data)))
        except Exception as exc:
            inbox.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class ProcessCaller:
    """Calls the function in a child process per worker thread."""

    def __init__(self, config: Mapping[str, Any]):
        self.reference = config["function"]
        self.python_path = list(config.get("python_path") or [])
        self._context = multiprocessing.get_context("spawn")
        self._local = threading.local()
        self._children: set[Any] = set()
        self._lock = threading.Lock()

    def _slot(self) -> tuple[Any, Connection]:
        slot = getattr(self._local, "slot", None)
        if slot is not None and slot[0].is_alive():
            return slot  # type: ignore[no-any-return]
        ours, theirs = self._context.Pipe()
        with TIMEOUTS_HELD:  # started and recorded, or neither
            child = self._context.Process(target=_child, daemon=True, name="synthbox-python",
                                          args=(self.reference, self.python_path, theirs))
            child.start()
            with self._lock:
                self._children.add(child)
        theirs.close()
        self._local.slot = (child, ours)
        return child, ours

    def _forget(self, child: Any) -> None:
        self._local.slot = None
        with self._lock:
            self._children.discard(child)
        if child.is_alive():
            child.kill()
        child.join(1)

    def __call__(self, job: JobContext) -> Any:
        child, pipe = self._slot()
        finished = False
        try:
            pipe.send(job.data)
            while not pipe.poll(POLL):
                if not child.is_alive():
                    raise FunctionFailed(f"the function's process died (exit code "
                                         f"{child.exitcode})")
            outcome, value = pipe.recv()
            finished = True
        except (EOFError, BrokenPipeError, ConnectionResetError):
            child.join(1)
            raise FunctionFailed(f"the function's process died (exit code "
                                 f"{child.exitcode})") from None
        finally:
            if not finished:  # died, or the job's timeout stopped the wait: a new child
                self._forget(child)
        if outcome == "error":
            raise FunctionFailed(value)
        return value

    def stop(self) -> None:
        with self._lock:
            children, self._children = list(self._children), set()
        for child in children:
            child.kill()
            child.join(1)


def python_handler(config: Mapping[str, Any]) -> ThreadCaller | ProcessCaller:
    if config.get("isolation") == "process":
        return ProcessCaller(config)
    return ThreadCaller(config)
