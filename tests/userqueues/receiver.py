"""A real HTTP/1.1 receiver on a free port for `http` queues: keeps connections alive,
records each delivery with its headers and the connection it came on, and answers what
the test scripts (status, body, headers), or 200 with `{"ok": true}`."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JobReceiver:
    def __init__(self) -> None:
        self.deliveries: list[dict] = []
        self.answers: list[tuple[int, bytes, dict[str, str]]] = []
        self.connections: set[int] = set()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.connections.add(id(self.connection))
                    outer.deliveries.append({"body": body, "headers": dict(self.headers),
                                             "json": json.loads(body)})
                    status, reply, headers = (outer.answers.pop(0) if outer.answers
                                              else (200, b'{"ok": true}', {}))
                if "X-Delay" in headers:  # answer late (a receiver that hangs)
                    time.sleep(float(headers.pop("X-Delay")))
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:  # the client gave up waiting (a timeout test)
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jobs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.answers.append((status, body, {k.replace("_", "-"): v
                                           for k, v in headers.items()}))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
