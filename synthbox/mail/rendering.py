"""Rendering saved email templates within bounds, away from the web thread.

A template is user code: nested loops can run for minutes or build strings larger than
memory. So it is rendered in a separate process (spawned on first use, reused), with a
time budget (the process is killed when it runs over), a cap on each part's output
(streamed, so the cap stops a loop early), a cap on string and list repetition, and an
address-space limit. Whatever goes wrong there comes back as a `RenderError` naming the
part, never an exception the API would answer with 500.
"""

from __future__ import annotations

import json
import queue
import select
import subprocess
import sys
import threading
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from synthbox.errors import Throttled

MAX_RENDERED_CHARS = 5_000_000  # each part; as large as an email body may be
TIME_BUDGET = 3.0  # seconds for one email's subject, text and HTML together
MEMORY_BYTES = 512 * 1024 * 1024  # the rendering process's address space
PROCESSES = 2


class RenderError(Exception):
    """A template could not be rendered within the bounds. `variables` is true when the
    variables given do not fit the template (a missing one, a forbidden attribute)."""

    def __init__(self, message: str, variables: bool = False):
        super().__init__(message)
        self.variables = variables


class BoundedSandbox(SandboxedEnvironment):
    """The sandbox, where `'x' * n` and `[x] * n` are refused past MAX_RENDERED_CHARS."""

    intercepted_binops = frozenset(["*"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and \
                        len(seq) * times > MAX_RENDERED_CHARS:
                    raise OverflowError(f"a repetition longer than {MAX_RENDERED_CHARS:,}")
        return super().call_binop(context, operator, left, right)


PLAIN = BoundedSandbox(autoescape=False, undefined=StrictUndefined)
HTML = BoundedSandbox(autoescape=True, undefined=StrictUndefined)


@lru_cache(maxsize=64)
def _compiled(source: str, html: bool) -> Any:
    return (HTML if html else PLAIN).from_string(source)


def render_part(source: str, variables: dict[str, Any], html: bool, part: str) -> str:
    """Render in this process, stopping as soon as the output passes the cap."""
    pieces, size = [], 0
    for piece in _compiled(source, html).generate(variables):
        size += len(piece)
        if size > MAX_RENDERED_CHARS:
            raise OverflowError(f"its {part} renders longer than {MAX_RENDERED_CHARS:,} "
                                "characters")
        pieces.append(piece)
    return "".join(pieces)


def _render_all(parts: dict[str, str | None], variables: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"ok": {part: None if source is None else
                       render_part(source, variables, part == "html", part)
                       for part, source in parts.items()}}
    except TemplateError as exc:
        return {"error": str(exc), "variables": True}
    except MemoryError:
        return {"error": "it needs more memory than a template may use"}
    except Exception as exc:  # noqa: BLE001 - any failure of user code is the input's fault
        return {"error": f"{type(exc).__name__}: {exc}"}


WORKER_ARG = "_render-templates"


def serve_stdio() -> None:
    """The rendering process: one JSON request a line on standard input, one JSON answer a
    line on standard output, until standard input closes."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    except (ImportError, ValueError, OSError):  # not on this platform: the caps still hold
        pass
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.write(json.dumps(_render_all(request["parts"], request["variables"])) + "\n")
        sys.stdout.flush()


def worker_command() -> list[str]:
    """How to start this process: the binary itself, or this Python with `-m synthbox`
    (synthbox/__main__.py hands WORKER_ARG to serve_stdio before anything else)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, WORKER_ARG]
    return [sys.executable, "-m", "synthbox", WORKER_ARG]


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(worker_command(), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, encoding="utf-8")

    def ask(self, request: dict[str, Any], budget: float) -> dict[str, Any] | None:
        """The answer, or None when there is none within `budget` seconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], budget)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise EOFError("the rendering process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(5)
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # unflushed input for a process that is gone
                pass


class Renderer:
    """Up to PROCESSES rendering processes, started when first needed."""

    def __init__(self, processes: int = PROCESSES, budget: float = TIME_BUDGET):
        self.budget = budget
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(processes):
            self._idle.put(None)  # a slot whose process is not started yet

    def render(self, parts: dict[str, str | None], variables: dict[str, Any]
               ) -> dict[str, str | None]:
        try:
            worker = self._idle.get(timeout=self.budget)
        except queue.Empty:
            raise Throttled("template: every renderer is busy; retry shortly", 1) from None
        try:
            if worker is not None and worker.process.poll() is not None:
                worker.stop()  # ended meanwhile (killed from outside): not this one's fault
                worker = None
            worker = worker or _Worker()
            answer = worker.ask({"parts": parts, "variables": variables}, self.budget)
            if answer is None:
                worker.stop()
                worker = None
                raise RenderError(f"it took longer than {self.budget:g} s to render")
        except (EOFError, OSError, ValueError):  # the process died (its memory limit)
            if worker is not None:
                worker.stop()
            worker = None
            raise RenderError("it needs more memory than a template may use") from None
        finally:
            self._idle.put(worker)
        if "error" in answer:
            raise RenderError(answer["error"], answer.get("variables", False))
        return answer["ok"]

    def close(self) -> None:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.stop()


_renderer: Renderer | None = None
_renderer_lock = threading.Lock()


def renderer() -> Renderer:
    """The process-wide renderer, made on first use (importing starts nothing)."""
    global _renderer
    with _renderer_lock:
        if _renderer is None:
            _renderer = Renderer()
        return _renderer
