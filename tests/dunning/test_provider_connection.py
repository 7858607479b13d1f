"""The sending threads' provider connection reads the environment's proxy settings once, with the
same outcome requests would give per call (dunning.services.providers.provider_connection)."""

import pytest

from dunning.services.providers import provider_connection

API = "http://127.0.0.1:8025/"


@pytest.fixture
def postmark(settings, monkeypatch):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t", "POSTMARK_API_URL": API}
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    return monkeypatch


def test_the_proxy_of_the_environment_is_kept_and_not_looked_up_per_call(postmark):
    postmark.setenv("HTTP_PROXY", "http://proxy.example:3128")
    connection = provider_connection()
    try:
        assert connection.session.trust_env is False
        assert connection.session.proxies["http"] == "http://proxy.example:3128"
    finally:
        connection.close()


def test_no_proxy_for_the_provider_address_means_a_direct_connection(postmark):
    postmark.setenv("HTTP_PROXY", "http://proxy.example:3128")
    postmark.setenv("NO_PROXY", "127.0.0.1")
    connection = provider_connection()
    try:
        assert "http" not in connection.session.proxies
    finally:
        connection.close()


def test_the_ca_bundle_of_the_environment_is_kept(postmark):
    postmark.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    connection = provider_connection()
    try:
        assert connection.session.verify == "/etc/ssl/certs/ca-certificates.crt"
    finally:
        connection.close()


def test_a_backend_without_http_session_is_opened_as_is(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    connection = provider_connection()
    assert not hasattr(connection, "session")
