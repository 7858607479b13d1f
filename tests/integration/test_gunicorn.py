"""The web service's gunicorn settings (config/gunicorn_conf.py, used by the Dockerfile and
docker-compose.yml) let a response stream for longer than the worker timeout: an export of a few
hundred thousand rows takes minutes, and gunicorn's default sync worker is killed mid-download once
a request outlasts `timeout`. Shown with the timeout cut to 1 s and a response that streams for 3 s
(tests/integration/slow_wsgi.py); the same server with the sync worker cuts it off."""

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration import slow_wsgi

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _download(port: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/export")
        response = conn.getresponse()
        try:
            body = response.read()
        except http.client.IncompleteRead as exc:
            body = exc.partial
        return response.status, body
    finally:
        conn.close()


def _serve(port: int, *extra: str) -> subprocess.Popen:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        pytest.skip("needs gunicorn (a runtime dependency: pip install -e .)")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.integration.slow_wsgi:app", "-c", "python:config.gunicorn_conf",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "1", "--access-logfile", "/dev/null", *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"gunicorn exited with {server.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.kill()
    raise AssertionError("gunicorn did not start in 20 s")


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


EXPECTED = b"".join(f"line {i}\n".encode() for i in range(slow_wsgi.CHUNKS))


def test_a_response_longer_than_the_worker_timeout_arrives_whole():
    port = _free_port()
    server = _serve(port)
    try:
        status, body = _download(port)
    finally:
        _stop(server)
    assert status == 200
    assert body == EXPECTED


def test_the_sync_worker_would_cut_it_off():
    """Why the setting matters: the same server with gunicorn's default worker class (one thread:
    with more, gunicorn picks gthread by itself)."""
    port = _free_port()
    server = _serve(port, "--worker-class", "sync", "--threads", "1")
    try:
        try:
            status, body = _download(port)
        except (ConnectionError, http.client.HTTPException):
            body = b""
    finally:
        _stop(server)
    assert body != EXPECTED and len(body) < len(EXPECTED)
