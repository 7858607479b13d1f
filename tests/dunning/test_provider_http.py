"""The sending threads' HTTP path (dunning.services.provider_http.DirectSession) against the local
Postmark simulator: a plain call skips requests' per-call machinery, and every outcome a sending
thread tells apart comes out as it does through requests: sent with the provider's id, a refused
connection retried, a read timeout never sent again, 5xx retried, 429 with its Retry-After, a
redirect followed, a proxy honoured."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.core.mail import EmailMultiAlternatives

from dunning.services.provider_http import DirectSession
from dunning.services.providers import AMBIGUOUS, SENT, THROTTLED, TRANSIENT, provider_connection, send_message
from scripts.provider_sim import ProviderSim, SimConfig


@pytest.fixture
def through_requests(monkeypatch):
    """Counts the calls that go through requests' own Session.request."""
    calls = []
    real = requests.Session.request

    def counting(session, method, url, **kwargs):
        calls.append(url)
        return real(session, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", counting)
    return calls


@pytest.fixture
def postmark(settings, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.DUNNING_SEND_RETRIES = 3
    settings.DUNNING_RETRY_BACKOFF_SECONDS = 0.01
    servers = []

    def start(config: SimConfig | None = None, url: str | None = None, timeout: float = 5) -> ProviderSim | None:
        sim = None
        if url is None:
            sim = ProviderSim(0, config or SimConfig()).start()
            servers.append(sim)
            url = sim.url
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t", "POSTMARK_API_URL": url, "REQUESTS_TIMEOUT": timeout}
        return sim

    yield start
    for sim in servers:
        sim.stop()


def message(to: str = "kunde@example.com") -> EmailMultiAlternatives:
    msg = EmailMultiAlternatives(subject="Zahlungserinnerung", body="Bitte zahlen Sie.",
                                 from_email="Shop <mahnung@shop.example>", to=[to])
    msg.metadata = {"reminder_token": "t-1"}
    return msg


def send(msg=None, **kwargs):
    connection = provider_connection()
    try:
        assert isinstance(connection.session, DirectSession)
        return send_message(msg or message(), connection, **kwargs)
    finally:
        connection.close()


def test_a_plain_call_goes_out_once_without_requests_machinery(postmark, through_requests):
    sim = postmark()
    kind, message_id, error = send()
    assert (kind, error) == (SENT, "")
    assert message_id in sim.state.tokens.values()
    assert sim.state.accepted["kunde@example.com"] == 1
    assert through_requests == []


def test_a_refused_connection_is_transient_and_retried(postmark, through_requests):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    postmark(url=f"http://127.0.0.1:{port}/")
    kind, message_id, error = send()
    assert (kind, message_id) == (TRANSIENT, "")
    assert "ConnectionError" in error
    assert through_requests == []


def test_a_read_timeout_is_ambiguous_and_not_sent_again(postmark, through_requests):
    sim = postmark(SimConfig(hang=1.0), timeout=0.3)
    kind, _message_id, error = send()
    assert kind == AMBIGUOUS, error
    assert "ReadTimeout" in error
    assert sim.state.calls == 1, "a call that may have gone out is never repeated"
    assert through_requests == []


def test_5xx_is_retried_until_the_provider_answers(postmark, through_requests):
    sim = postmark(SimConfig(error_burst=(1, 3)))  # calls 1 and 2 answer 503
    kind, _message_id, _error = send()
    assert kind == SENT
    assert (sim.state.calls, sim.state.errors) == (3, 2)
    assert through_requests == []


def test_429_gives_its_retry_after(postmark, through_requests):
    sim = postmark(SimConfig(throttle_every=1, retry_after=7))
    assert send(throttle=True)[:2] == (THROTTLED, "")
    assert send(throttle=True)[2] == "7.0"
    assert sim.state.accepted == {}
    assert through_requests == []


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", self.target + self.path.lstrip("/"))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def test_a_redirect_is_followed_as_requests_follows_it(postmark, through_requests):
    sim = postmark()
    _Redirect.target = sim.url
    redirecting = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=redirecting.serve_forever, daemon=True).start()
    try:
        postmark(url=f"http://127.0.0.1:{redirecting.server_address[1]}/")
        assert send()[0] == SENT
    finally:
        redirecting.shutdown()
        redirecting.server_close()
    assert sim.state.accepted["kunde@example.com"] == 1
    assert len(through_requests) == 1, "the redirect was followed by requests"


def test_a_proxy_of_the_environment_is_used(postmark, monkeypatch, through_requests):
    sim = postmark()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")  # a proxy that refuses
    kind, _message_id, error = send()
    assert kind == TRANSIENT
    assert "ProxyError" in error or "ConnectionError" in error
    assert through_requests, "the call went through requests, which knows proxies"
    assert sim.state.calls == 0
