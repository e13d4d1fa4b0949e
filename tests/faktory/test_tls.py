"""The Faktory listener with TLS (faktory_tls_cert, faktory_tls_key): the PyPI client
connects with tcp+tls://; a plain-text client gets no greeting; the server goes on."""

from __future__ import annotations

import socket
import subprocess

import faktory
import pytest

from tests.conftest import Serve, free_port
from tests.faktory.helpers import faktory_serve


@pytest.fixture
def tls_server(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    serve, port = faktory_serve(tmp_path, env={"SYNTHBOX_FAKTORY_TLS_CERT": str(cert),
                                               "SYNTHBOX_FAKTORY_TLS_KEY": str(key)})
    yield serve, port
    serve.stop()


# the PyPI client (1.0) wraps its socket with the deprecated ssl.wrap_socket()
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_client_pushes_over_tls_and_plain_text_is_refused(tls_server):
    serve, port = tls_server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(b"HELLO {}\r\n")
        plain.settimeout(5)
        try:
            answer = plain.recv(100)
        except (ConnectionResetError, TimeoutError):
            answer = b""
        assert not answer.startswith(b"+HI")
    with faktory.connection(f"tcp+tls://127.0.0.1:{port}") as client:
        assert client.queue("work", args=[1], queue="secure", jid="tls-1")
    job = serve.request("GET", "/api/v1/queues/secure/jobs/tls-1")[1]["data"]
    assert job["state"] == "waiting"
    assert "faktory TLS handshake with 127.0.0.1 failed" in serve.output()


def test_a_certificate_without_its_key_stops_the_start(tmp_path):
    serve = Serve(tmp_path / "data", {"SYNTHBOX_FAKTORY_ADDRESS": f"127.0.0.1:{free_port()}",
                                      "SYNTHBOX_FAKTORY_TLS_CERT": "/nonexistent.pem"})
    serve.start(wait=False)
    assert serve.process.wait(30) == 2
    assert "faktory_tls_key: give both" in serve.output()
