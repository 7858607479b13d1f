"""Forwarded headers are trusted only from the proxies listed in DJANGO_TRUSTED_PROXIES.

The attack (an outside probe, production settings): the app took the client address from
X-Forwarded-For whoever sent it, and the app port was reachable directly. Rotating the header
gave unlimited password guesses past the sign-in lock (django-axes), and writing a victim's
address into it locked the victim out. X-Forwarded-Proto was believed the same way."""

import os
import subprocess
import sys

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.test import Client

from tests.factories import UserFactory

LOGIN = "/accounts/login/"
PASSWORD = "secret-pass-123"  # UserFactory's
PROXY = "172.18.0.5"  # the TLS proxy in front of the app
MALLORY = "203.0.113.66"  # connects to the app port directly
ALICE = "198.51.100.23"
BOB = "192.0.2.44"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(db):
    return UserFactory(username="clerk", is_staff=True)


@pytest.fixture
def behind_proxy(settings):
    """What DJANGO_TRUSTED_PROXIES=172.18.0.5,10.0.0.0/8 sets (checked below in a fresh process)."""
    settings.TRUSTED_PROXIES = [PROXY, "10.0.0.0/8"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def attempt(*, password: str, remote_addr: str, username: str = "clerk", **headers) -> tuple[Client, object]:
    client = Client()
    extra = {"REMOTE_ADDR": remote_addr, "HTTP_ACCEPT_LANGUAGE": "en", **headers}
    return client, client.post(LOGIN, {"username": username, "password": password}, **extra)


def is_locked_out(response) -> bool:
    return response.status_code == 429 and b'id="locked-out"' in response.content


def recorded_addresses() -> set[str]:
    return set(AccessAttempt.objects.values_list("ip_address", flat=True))


# --- the attack, with the settings as shipped (no trusted proxy configured) ----------------------

def test_rotating_x_forwarded_for_does_not_buy_more_guesses(user):
    """The probe's 40 wrong passwords, each with another invented X-Forwarded-For, then the right
    one: the lock must hold after the 5th failure, and the right password must be refused."""
    statuses = []
    for n in range(40):
        _, response = attempt(password="wrong", remote_addr=MALLORY, HTTP_X_FORWARDED_FOR=f"10.66.{n // 250}.{n % 250}")
        statuses.append(429 if is_locked_out(response) else response.status_code)
    assert statuses == [200] * 4 + [429] * 36
    client, response = attempt(password=PASSWORD, remote_addr=MALLORY, HTTP_X_FORWARDED_FOR="10.99.0.1")
    assert is_locked_out(response)
    assert "_auth_user_id" not in client.session
    assert recorded_addresses() == {MALLORY}


def test_a_forged_x_forwarded_for_cannot_lock_out_someone_else(user):
    """Mallory writes Alice's address into the header and fails five times: Alice is not locked."""
    for _ in range(5):
        attempt(password="wrong", remote_addr=MALLORY, HTTP_X_FORWARDED_FOR=ALICE)
    client, response = attempt(password=PASSWORD, remote_addr=ALICE)
    assert response.status_code == 302
    assert "_auth_user_id" in client.session
    assert recorded_addresses() == {MALLORY}


def test_a_forged_x_forwarded_proto_is_not_believed(settings, db):
    """With the https redirect on, a plain-http request claiming https from a stranger is redirected."""
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get(LOGIN, REMOTE_ADDR=MALLORY, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"


# --- behind a trusted proxy --------------------------------------------------------------------

def test_through_the_trusted_proxy_the_client_is_the_address_it_appended(user, behind_proxy):
    for n in range(5):  # what the client wrote itself stands left of what the proxy appended
        attempt(password="wrong", remote_addr=PROXY, HTTP_X_FORWARDED_FOR=f"10.66.0.{n}, 8.8.8.{n}, {MALLORY}")
    assert recorded_addresses() == {MALLORY}
    _, response = attempt(password=PASSWORD, remote_addr=PROXY, HTTP_X_FORWARDED_FOR=MALLORY)
    assert is_locked_out(response)
    client, response = attempt(password=PASSWORD, remote_addr=PROXY, HTTP_X_FORWARDED_FOR=ALICE)
    assert response.status_code == 302  # another client behind the same proxy signs in
    assert "_auth_user_id" in client.session


def test_trusted_hops_are_skipped_from_the_right(user, behind_proxy):
    """Two proxies in a row (both trusted): the client is the right-most entry that is no proxy."""
    attempt(password="wrong", remote_addr=PROXY, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {ALICE}, 10.1.2.3")
    assert recorded_addresses() == {ALICE}


def test_a_stranger_is_not_trusted_even_when_proxies_are_configured(user, behind_proxy):
    for n in range(5):
        attempt(password="wrong", remote_addr=MALLORY, HTTP_X_FORWARDED_FOR=f"10.66.0.{n}")
    assert recorded_addresses() == {MALLORY}
    _, response = attempt(password=PASSWORD, remote_addr=MALLORY, HTTP_X_FORWARDED_FOR=ALICE)
    assert is_locked_out(response)


def test_x_forwarded_proto_from_the_trusted_proxy_is_believed(settings, db, behind_proxy):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get(LOGIN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https",
                        HTTP_X_FORWARDED_FOR=ALICE).status_code == 200
    assert Client().get(LOGIN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=ALICE).status_code == 301  # plain http
    assert Client().get(LOGIN, REMOTE_ADDR=MALLORY, HTTP_X_FORWARDED_PROTO="https").status_code == 301


@pytest.mark.parametrize("xff", ["", "garbage", "999.1.1.1", "unknown, ", ", , ,", "1.2.3.4:8080", "\x00", "::1]["])
def test_a_malformed_x_forwarded_for_from_the_proxy_never_fails(user, behind_proxy, xff):
    """Whatever the proxy passes on, a sign-in attempt is answered (never a 500); an entry that is no
    address ends the walk, and the proxy's own address counts."""
    _, response = attempt(password="wrong", remote_addr=PROXY, HTTP_X_FORWARDED_FOR=xff)
    assert response.status_code == 200
    assert recorded_addresses() == {PROXY}


def test_the_middleware_runs_before_everything_that_reads_the_headers():
    assert django_settings.MIDDLEWARE[0] == "config.proxies.TrustedProxyMiddleware"
    assert django_settings.TRUSTED_PROXIES == []  # nothing trusted unless configured


# --- configuration -----------------------------------------------------------------------------

def settings_value(name: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "MAHNWESEN"))}
    code = f"from django.conf import settings; print(repr(settings.{name}))"
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=django_settings.BASE_DIR,
                          env={**clean, "DJANGO_DEBUG": "true", **env}, capture_output=True, text=True, timeout=120)


def test_trusted_proxies_are_read_from_the_environment():
    result = settings_value("TRUSTED_PROXIES", DJANGO_TRUSTED_PROXIES=" 172.18.0.5 , 10.0.0.0/8,fd00::/8")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['172.18.0.5', '10.0.0.0/8', 'fd00::/8']"
    result = settings_value("SECURE_PROXY_SSL_HEADER", DJANGO_TRUSTED_PROXIES="172.18.0.5,10.0.0.0/8")
    assert result.stdout.strip().splitlines()[-1] == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_without_trusted_proxies_nothing_forwarded_is_believed():
    assert settings_value("TRUSTED_PROXIES").stdout.strip().splitlines()[-1] == "[]"
    assert settings_value("SECURE_PROXY_SSL_HEADER").stdout.strip().splitlines()[-1] == "None"


def test_a_malformed_trusted_proxy_is_a_clear_error():
    result = settings_value("TRUSTED_PROXIES", DJANGO_TRUSTED_PROXIES="172.18.0.5,proxy.local")
    assert result.returncode != 0
    assert "DJANGO_TRUSTED_PROXIES: 'proxy.local' is not an IP address or network" in result.stderr


def test_the_old_behind_proxy_switch_refuses_to_start_instead_of_trusting_everyone():
    result = settings_value("TRUSTED_PROXIES", DJANGO_BEHIND_PROXY="true")
    assert result.returncode != 0
    assert "DJANGO_BEHIND_PROXY was replaced by DJANGO_TRUSTED_PROXIES" in result.stderr
    assert settings_value("TRUSTED_PROXIES", DJANGO_BEHIND_PROXY="false").returncode == 0  # what it meant anyway
