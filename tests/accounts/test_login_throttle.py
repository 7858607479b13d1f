"""Login throttling (django-axes): failed sign-ins lock one user name from one client address for an
hour; behind the TLS proxy (DJANGO_TRUSTED_PROXIES) the client address is the one the proxy appended to
X-Forwarded-For. Forged forwarded headers from anyone else: tests/security/test_forwarded_headers.py."""

import datetime
import importlib.util
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.http import HttpRequest
from django.test import Client

import config
from tests.factories import UserFactory

LOGIN = "/accounts/login/"
PASSWORD = "secret-pass-123"  # UserFactory's
PROXY = "172.18.0.5"  # REMOTE_ADDR of every request that came through the proxy
ALICE = "203.0.113.7"
BOB = "198.51.100.23"
IP_SETTINGS = ("TRUSTED_PROXIES", "SECURE_PROXY_SSL_HEADER", "AXES_CLIENT_IP_CALLABLE")


def _settings_module(monkeypatch, *, behind_proxy: bool):
    """config/settings.py evaluated afresh with DJANGO_TRUSTED_PROXIES set to the proxy or empty, so the
    tests check the real settings code of both modes whatever the environment running them says."""
    monkeypatch.delenv("DJANGO_BEHIND_PROXY", raising=False)
    monkeypatch.setenv("DJANGO_TRUSTED_PROXIES", PROXY if behind_proxy else "")
    monkeypatch.setenv("DJANGO_SECRET_KEY", django_settings.SECRET_KEY)  # required with DEBUG off
    spec = importlib.util.spec_from_file_location("config._settings_probe",
                                                  Path(config.__file__).parent / "settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _apply_ip_settings(settings, module) -> None:
    for name in IP_SETTINGS:
        if hasattr(module, name):
            setattr(settings, name, getattr(module, name))
        elif hasattr(settings, name):
            delattr(settings, name)


@pytest.fixture
def behind_proxy(settings, monkeypatch):
    _apply_ip_settings(settings, _settings_module(monkeypatch, behind_proxy=True))


@pytest.fixture
def no_proxy(settings, monkeypatch):
    _apply_ip_settings(settings, _settings_module(monkeypatch, behind_proxy=False))


@pytest.fixture
def user(db):
    return UserFactory(username="clerk", is_staff=True)


def attempt(client: Client, *, password: str, username: str = "clerk", xff: str | None = ALICE,
            remote_addr: str = PROXY):
    extra = {"REMOTE_ADDR": remote_addr, "HTTP_ACCEPT_LANGUAGE": "en"}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def fail(client: Client, times: int, **kwargs) -> list[int]:
    return [attempt(client, password="wrong", **kwargs).status_code for _ in range(times)]


def is_locked_out(response) -> bool:
    return response.status_code == 429 and b'id="locked-out"' in response.content


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_settings_behind_a_proxy():
    assert django_settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert django_settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert django_settings.AXES_FAILURE_LIMIT == 5
    cool_off = django_settings.AXES_COOLOFF_TIME
    assert cool_off == datetime.timedelta(hours=1)
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_a_correct_login_works(client, user, behind_proxy):
    response = attempt(client, password=PASSWORD)
    assert response.status_code == 302
    assert logged_in(client)
    assert not AccessAttempt.objects.exists()


def test_five_wrong_passwords_lock_the_user_out_even_with_the_right_one(client, user, behind_proxy):
    assert fail(client, 4) == [200] * 4  # the form again, with its error
    assert is_locked_out(attempt(client, password="wrong"))  # the 5th failure locks
    response = attempt(client, password=PASSWORD)  # the 6th, with the right password
    assert is_locked_out(response)
    assert b"60 minutes" in response.content
    assert not logged_in(client)


def test_another_address_behind_the_proxy_is_not_affected(user, behind_proxy):
    fail(Client(), 5, xff=ALICE)
    assert is_locked_out(attempt(Client(), password=PASSWORD, xff=ALICE))
    bob = Client()
    assert attempt(bob, password=PASSWORD, xff=BOB).status_code == 302  # same proxy, other client
    assert logged_in(bob)


def test_another_user_from_the_same_address_is_not_affected(user, behind_proxy):
    UserFactory(username="colleague")
    fail(Client(), 5)
    colleague = Client()
    assert attempt(colleague, username="colleague", password=PASSWORD).status_code == 302


def test_a_forged_x_forwarded_for_does_not_dodge_the_lock(user, behind_proxy):
    """The proxy appends the address it saw; what the client wrote into the header itself stands to
    the left and is ignored, so inventing addresses does not buy new attempts."""
    for n in range(5):
        attempt(Client(), password="wrong", xff=f"10.0.0.{n}, {ALICE}")
    assert is_locked_out(attempt(Client(), password=PASSWORD, xff=f"192.0.2.99, {ALICE}"))
    assert attempt(Client(), password=PASSWORD, xff=f"{ALICE}, {BOB}").status_code == 302  # it's Bob


def test_without_a_proxy_x_forwarded_for_is_ignored(user, no_proxy):
    for n in range(5):
        attempt(Client(), password="wrong", xff=f"10.0.0.{n}", remote_addr=ALICE)
    assert is_locked_out(attempt(Client(), password=PASSWORD, xff=BOB, remote_addr=ALICE))
    assert attempt(Client(), password=PASSWORD, xff=ALICE, remote_addr=BOB).status_code == 302


def test_the_lock_expires_after_the_cool_off(client, user, behind_proxy):
    fail(client, 5)
    # travel in time: the failures happened 59 minutes ago -> still locked
    now = AccessAttempt.objects.get().attempt_time
    AccessAttempt.objects.update(attempt_time=now - datetime.timedelta(minutes=59))
    assert is_locked_out(attempt(client, password=PASSWORD))
    # ... 61 minutes ago (the locked attempt just now refreshed the time, so set it again)
    AccessAttempt.objects.update(attempt_time=now - datetime.timedelta(minutes=61))
    assert attempt(client, password=PASSWORD).status_code == 302
    assert logged_in(client)


def test_a_successful_login_resets_the_count(user, behind_proxy):
    fail(Client(), 4)
    assert attempt(Client(), password=PASSWORD).status_code == 302
    assert fail(Client(), 4) == [200] * 4  # four more: not locked, the earlier four are forgotten
    assert attempt(Client(), password=PASSWORD).status_code == 302


def test_client_login_needs_the_request_and_force_login_just_works(client, user):
    """For other tests: axes' backend needs the request, so client.login takes one; force_login
    bypasses authentication altogether."""
    assert client.login(request=HttpRequest(), username="clerk", password=PASSWORD)
    client.logout()
    with pytest.raises(ValueError, match="requires a request"):
        client.login(username="clerk", password=PASSWORD)
    client.force_login(user)
    assert client.get("/").status_code == 302
    assert logged_in(client)
