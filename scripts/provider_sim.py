#!/usr/bin/env python
"""A local e-mail provider for benchmarks and tests: a Postmark-compatible HTTP API on 127.0.0.1.

It answers `POST /email` and `POST /email/batch` like Postmark (JSON with `MessageID`, `ErrorCode`,
`Message`, `To`) after a configurable latency, and can misbehave on purpose: HTTP 429 with
`Retry-After` on every Nth call, bursts of 5xx. It keeps what it accepted (recipient and the
reminder token of the metadata), so a test can check that every reminder went out exactly once.

Point anymail's Postmark backend at it:

    EMAIL_BACKEND=anymail.backends.postmark.EmailBackend
    ANYMAIL_POSTMARK_SERVER_TOKEN=sim  ANYMAIL_POSTMARK_API_URL=http://127.0.0.1:PORT/

Standalone: `python scripts/provider_sim.py --port 8025 --latency-ms 50 [--throttle-every 10]`."""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class SimConfig:
    latency: float = 0.0  # seconds before each answer
    throttle_every: int = 0  # every Nth call answers 429 (0: never)
    retry_after: float = 1.0  # the Retry-After of a 429, seconds
    error_burst: tuple[int, int] = (0, 0)  # calls [start, end) answer 503
    hang: float = 0.0  # accepted calls sleep this long *after* accepting (read timeouts on purpose)


@dataclass
class SimState:
    calls: int = 0
    accepted: Counter = field(default_factory=Counter)  # recipient -> messages accepted
    tokens: dict = field(default_factory=dict)  # reminder token -> MessageID
    throttled: int = 0
    errors: int = 0
    call_times: list = field(default_factory=list)  # monotonic time of each accepted message
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: anymail's requests session reuses connections
    # headers and body in one segment, no Nagle: otherwise delayed ACKs add ~40 ms to every answer
    wbufsize = 65536
    disable_nagle_algorithm = True
    server: ProviderSim

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def _answer(self, status: int, body, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's name
        """`GET /_stats`: what the simulator accepted, for a simulator run in a process of its own."""
        if self.path.rstrip("/") != "/_stats":
            return self._answer(404, {"ErrorCode": 404, "Message": "not found"})
        state = self.server.state
        with state.lock:
            times = sorted(state.call_times)
            body = {"calls": state.calls, "accepted": sum(state.accepted.values()),
                    "twice": sum(1 for c in state.accepted.values() if c > 1), "throttled": state.throttled,
                    "errors": state.errors, "first": times[0] if times else None, "last": times[-1] if times else None,
                    "cpu_seconds": time.process_time()}
        return self._answer(200, body)

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        sim = self.server
        config, state = sim.config, sim.state
        if config.latency:
            time.sleep(config.latency)
        with state.lock:
            state.calls += 1
            call = state.calls
        if self.path.rstrip("/") not in ("/email", "/email/batch"):
            return self._answer(404, {"ErrorCode": 404, "Message": "not found"})
        if not self.headers.get("X-Postmark-Server-Token"):
            return self._answer(401, {"ErrorCode": 10, "Message": "No server token"})
        if config.throttle_every and call % config.throttle_every == 0:
            with state.lock:
                state.throttled += 1
            return self._answer(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"},
                                {"Retry-After": f"{config.retry_after:g}"})
        start, end = config.error_burst
        if start <= call < end:
            with state.lock:
                state.errors += 1
            return self._answer(503, {"ErrorCode": 503, "Message": "Service unavailable"})
        try:
            payload = json.loads(raw)
        except ValueError:
            return self._answer(400, {"ErrorCode": 400, "Message": "Invalid JSON"})
        messages = payload if isinstance(payload, list) else [payload]
        answers = []
        now = time.monotonic()
        with state.lock:
            for message in messages:
                message_id = str(uuid.uuid4())
                to = message.get("To", "")
                state.accepted[to] += 1
                state.call_times.append(now)
                token = (message.get("Metadata") or {}).get("reminder_token")
                if token:
                    state.tokens[token] = message_id
                answers.append({"To": to, "SubmittedAt": "2026-01-01T00:00:00Z", "MessageID": message_id,
                                "ErrorCode": 0, "Message": "OK"})
        if config.hang:
            time.sleep(config.hang)
        return self._answer(200, answers if isinstance(payload, list) else answers[0])


class ProviderSim(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int = 0, config: SimConfig | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.config = config or SimConfig()
        self.state = SimState()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def start(self) -> ProviderSim:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def anymail_env(self) -> dict[str, str]:
        """The environment that points a `manage.py` process at this simulator."""
        return {"EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend", "ANYMAIL_POSTMARK_SERVER_TOKEN": "sim",
                "ANYMAIL_POSTMARK_API_URL": self.url}


class SimProcess:
    """The simulator in a process of its own (its interpreter lock and CPU are not the caller's):
    `python scripts/provider_sim.py --port 0`, which prints its URL; `stats()` asks it what it accepted."""

    def __init__(self, config: SimConfig | None = None) -> None:
        import subprocess
        import sys

        config = config or SimConfig()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--port", "0", "--latency-ms", str(config.latency * 1000),
             "--throttle-every", str(config.throttle_every), "--retry-after", str(config.retry_after)],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if " on http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = line.split(" on ", 1)[1].split(" ", 1)[0]

    def stats(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url + "_stats", timeout=10) as response:  # noqa: S310 - our own URL
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--throttle-every", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    args = parser.parse_args()
    sim = ProviderSim(args.port, SimConfig(latency=args.latency_ms / 1000, throttle_every=args.throttle_every,
                                           retry_after=args.retry_after))
    print(f"Postmark simulator on {sim.url} ({args.latency_ms:g} ms)", flush=True)
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"accepted {sum(sim.state.accepted.values())} messages in {sim.state.calls} calls")


if __name__ == "__main__":
    main()
