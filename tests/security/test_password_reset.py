"""Password reset by e-mail: off unless DJANGO_PASSWORD_RESET=true, and when on, throttled per
e-mail address and per client address behind one neutral answer.

The attack (an outside probe): /accounts/password_reset/ was open and unthrottled while the shipped
compose sent all mail to a mail catcher whose UI anyone could read, so anyone could take over a
superuser by requesting a reset link and reading it there. Flooding a victim's inbox was free too."""

import datetime
import os
import re
import subprocess
import sys
import uuid

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.cache import cache
from django.test import Client

from tests.factories import UserFactory

RESET = "/accounts/password_reset/"
DONE = "/accounts/password_reset/done/"
PASSWORD = "secret-pass-123"
ALICE = "198.51.100.23"
MALLORY = "203.0.113.66"


@pytest.fixture(autouse=True)
def _fresh_counters():
    """The counters live in the test process's memory cache (CACHE_URL is not set under test); never
    clear a Redis database this way."""
    assert django_settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def superuser(db):
    return UserFactory(username="support", email="support@shop.example", is_staff=True, is_superuser=True)


@pytest.fixture
def enabled(settings):
    settings.PASSWORD_RESET_ENABLED = True
    settings.PASSWORD_RESET_LIMIT_PER_EMAIL = 3
    settings.PASSWORD_RESET_LIMIT_PER_CLIENT = 10


def ask(email: str, remote_addr: str = MALLORY, client: Client | None = None):
    return (client or Client()).post(RESET, {"email": email}, REMOTE_ADDR=remote_addr, HTTP_ACCEPT_LANGUAGE="en")


# --- off unless configured -----------------------------------------------------------------------

def test_password_reset_is_off_by_default(superuser):
    assert Client().get(RESET).status_code == 404
    assert ask("support@shop.example").status_code == 404
    assert mail.outbox == []
    for url in (DONE, "/accounts/reset/MQ/set-password/", "/accounts/reset/MQ/abc-123/", "/accounts/reset/done/"):
        assert Client().get(url).status_code == 404, url


def test_sign_in_and_password_change_stay_when_reset_is_off(superuser):
    assert Client().get("/accounts/login/").status_code == 200
    assert Client().get("/accounts/password_change/").status_code == 302  # to the sign-in
    assert b"password_reset" not in Client().get("/accounts/login/").content  # no link to a 404


# --- when on: throttled ----------------------------------------------------------------------------

def test_repeated_requests_for_one_address_send_at_most_the_limit(superuser, enabled):
    """Ten requests for the superuser's address, each from another client: three mails, and all ten
    answers are the same redirect to the same neutral page."""
    responses = [ask("support@shop.example", remote_addr=f"192.0.2.{n}") for n in range(10)]
    assert [(r.status_code, r["Location"]) for r in responses] == [(302, DONE)] * 10
    assert len(mail.outbox) == 3
    assert {tuple(m.to) for m in mail.outbox} == {("support@shop.example",)}


def test_the_address_is_matched_whatever_its_case_and_spaces(superuser, enabled):
    for email in ("support@shop.example", "SUPPORT@shop.example", " Support@Shop.Example ", "support@SHOP.example"):
        ask(email, remote_addr=ALICE)
    assert len(mail.outbox) == 3


def test_one_client_asking_for_many_addresses_is_limited(enabled, db):
    for n in range(15):
        UserFactory(username=f"clerk{n}", email=f"clerk{n}@shop.example")
    responses = [ask(f"clerk{n}@shop.example", remote_addr=MALLORY) for n in range(15)]
    assert {r["Location"] for r in responses} == {DONE}
    assert len(mail.outbox) == 10
    ask("clerk14@shop.example", remote_addr=ALICE)  # another client is not affected
    assert len(mail.outbox) == 11


def test_the_answer_does_not_tell_whether_the_address_exists(superuser, enabled):
    known, unknown = ask("support@shop.example"), ask("nobody@shop.example")
    for _ in range(5):
        throttled = ask("support@shop.example")
    assert len(mail.outbox) == 3  # known 1 + the first two of the five
    for response in (known, unknown, throttled):
        assert (response.status_code, response["Location"]) == (302, DONE)
    pages = {re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", Client().get(r["Location"]).content)
             for r in (known, unknown, throttled)}
    assert len(pages) == 1
    assert b'id="password-reset-done"' in pages.pop()


def test_a_malformed_address_is_a_form_error_not_a_mail(superuser, enabled):
    response = ask("not-an-address")
    assert response.status_code == 200
    assert b"Enter a valid email address." in response.content
    assert mail.outbox == []


def test_the_link_in_the_mail_sets_a_new_password(superuser, enabled):
    ask("support@shop.example", remote_addr=ALICE)
    link = re.search(r"https?://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    client = Client()
    form = client.get(link, follow=True)
    assert form.status_code == 200
    new = {"new_password1": "N3w-long-pass!", "new_password2": "N3w-long-pass!"}
    response = client.post(form.redirect_chain[-1][0], new)
    assert (response.status_code, response["Location"]) == (302, "/accounts/reset/done/")
    assert client.get("/accounts/reset/done/").status_code == 200
    superuser.refresh_from_db()
    assert superuser.check_password("N3w-long-pass!")


def test_the_login_page_links_to_the_reset_when_it_is_on(enabled, db):
    assert b'href="/accounts/password_reset/"' in Client().get("/accounts/login/").content


# --- the counter ---------------------------------------------------------------------------------

def test_never_more_than_the_limit_in_any_hour_and_allowed_again_later(settings, now):
    from accounts.services import password_reset_allowed  # here: the attack tests above ran before it existed

    settings.PASSWORD_RESET_LIMIT_PER_EMAIL = 3

    def allowed(minutes: int, email: str = "a@shop.example") -> bool:
        return password_reset_allowed(email=email, client=f"192.0.2.{minutes % 250}",
                                      now=now + datetime.timedelta(minutes=minutes))

    assert [allowed(m) for m in (0, 50, 59)] == [True] * 3
    assert not allowed(61)  # the next clock hour, but within an hour of the last three
    assert allowed(61, email="b@shop.example")  # other addresses are counted apart
    assert allowed(180)  # two hours on: allowed again


@pytest.mark.redis
def test_the_counter_works_on_redis_shared_by_all_processes(settings, now):
    """Compose sets CACHE_URL to Redis so every gunicorn worker counts together: the same counter
    through Redis (own key prefix, nothing cleared)."""
    from accounts.services import password_reset_allowed

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"needs a Redis server at {url}: {exc}")
    prefix = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                                   "KEY_PREFIX": prefix, "TIMEOUT": 60}}
    settings.PASSWORD_RESET_LIMIT_PER_EMAIL = 3
    try:
        results = [password_reset_allowed(email="a@shop.example", client=f"192.0.2.{n}", now=now) for n in range(5)]
        assert results == [True, True, True, False, False]
        assert not password_reset_allowed(email="a@shop.example", client=ALICE, now=now + datetime.timedelta(hours=1))
        assert password_reset_allowed(email="a@shop.example", client=ALICE, now=now + datetime.timedelta(hours=2))
    finally:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


# --- configuration -----------------------------------------------------------------------------

PRODUCTION = {
    "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "kT3v9-Qx7LmZ2pW8rY4sN6bH1cJ5dF0gA_eU-oI8uY7tR6eW5qA4sD3fG2",
    "DJANGO_ALLOWED_HOSTS": "mahnwesen.example", "DJANGO_SECURE_SSL_REDIRECT": "true", "DJANGO_HSTS_PRELOAD": "true",
    "DJANGO_TRUSTED_PROXIES": "172.18.0.1",
    "DATABASE_URL": "sqlite:////tmp/x.db",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL", "MAHNWESEN", "EMAIL_", "CACHE_URL", "ANYMAIL_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=django_settings.BASE_DIR,
                          env={**clean, **PRODUCTION, **env}, capture_output=True, text=True, timeout=120)


def test_the_deploy_check_warns_when_reset_is_on_without_a_shared_cache_or_real_mail():
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_PASSWORD_RESET="true")
    assert result.returncode != 0
    assert "accounts.W001" in result.stderr and "accounts.W002" in result.stderr
    configured = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_PASSWORD_RESET="true",
                        CACHE_URL="redis://127.0.0.1:6379/1", EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
                        ANYMAIL_WEBHOOK_SECRET="tracking:a-long-random-password")
    assert configured.returncode == 0, configured.stdout + configured.stderr


def test_a_cache_url_that_is_not_redis_is_a_clear_error():
    result = manage("check", CACHE_URL="memcached://127.0.0.1:11211")
    assert result.returncode != 0
    assert "CACHE_URL must be a redis:// URL or empty, not 'memcached://127.0.0.1:11211'" in result.stderr


@pytest.mark.parametrize("name", ["LETTER_BATCHES_KEEP_DAYS", "EXPORT_JOBS_KEEP_DAYS"])
def test_files_must_be_kept_at_least_a_day(name):
    result = manage("check", **{name: "0"})
    assert result.returncode != 0
    assert f"{name} must be at least 1, not 0" in result.stderr
