"""The supervisor's control socket: `<data-dir>/synthbox.sock`, mode 0600, one JSON
request and one JSON answer per connection."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthbox.errors import SynthBoxError
from synthbox.threads import start_thread

SOCKET_NAME = "synthbox.sock"


class NoSupervisor(SynthBoxError, RuntimeError):
    pass


def socket_path(data_path: Path) -> Path:
    return data_path / SOCKET_NAME


class ControlServer:
    def __init__(self, data_path: Path, handle: Callable[[dict[str, Any]], dict[str, Any]]):
        self.path = socket_path(data_path)
        self.handle = handle
        if self.path.exists():
            try:
                request(data_path, {"command": "ping"}, timeout=2)
            except NoSupervisor:
                self.path.unlink()  # left by a supervisor that died
            else:
                raise RuntimeError(f"a supervisor already runs on {data_path}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)
        try:
            self.sock.bind(str(self.path))
        except OSError as exc:
            self.sock.close()
            raise RuntimeError(f"cannot make the control socket {self.path} ({exc.strerror}); "
                               "a shorter data_dir path helps") from None
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)
        self.sock.listen(16)
        self.thread = start_thread("control", self._serve)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            start_thread("control-answer", self._answer, conn)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                answer = self.handle(json.loads(_read_line(conn) or b"{}"))
            except Exception as exc:  # a bad request is answered, not fatal
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def request(data_path: Path, message: dict[str, Any], timeout: float = 120.0
            ) -> dict[str, Any]:
    path = socket_path(data_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, OSError):
            raise NoSupervisor(f"no supervisor runs on {data_path} (start one with "
                               "`synthbox start -i N`)") from None
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = _read_line(sock)
    if not data:
        raise NoSupervisor(f"the supervisor on {data_path} is stopping")
    return json.loads(data)


def _read_line(sock: socket.socket) -> bytes:
    """One message: bytes up to a newline, or to the end of the connection."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
