"""Production settings: deploy check clean, secure cookies and HSTS behind TLS, a CSP on the
back-office pages, secrets only from the environment."""

import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.factories import OrderFactory, berlin

PRODUCTION = {
    "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "kT3v9-Qx7LmZ2pW8rY4sN6bH1cJ5dF0gA_eU-oI8uY7tR6eW5qA4sD3fG2",
    "DJANGO_ALLOWED_HOSTS": "mahnwesen.example",
    "DJANGO_SECURE_SSL_REDIRECT": "true", "DJANGO_HSTS_PRELOAD": "true", "DATABASE_URL": "sqlite:////tmp/x.db",
    "DJANGO_TRUSTED_PROXIES": "172.18.0.1",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL", "MAHNWESEN"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=django_settings.BASE_DIR, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_deploy_check_is_clean_with_production_values():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_values_behind_a_tls_proxy():
    code = ("from django.conf import settings as s; import json; print(json.dumps({k: getattr(s, k) for k in ["
            "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER', "
            "'SESSION_COOKIE_HTTPONLY', 'X_FRAME_OPTIONS', 'DEBUG']}))")
    result = manage("shell", "-c", code, env={**PRODUCTION, "DJANGO_TRUSTED_PROXIES": "172.18.0.1"})
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {"SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_HSTS_SECONDS": 31536000,
                      "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"], "SESSION_COOKIE_HTTPONLY": True,
                      "X_FRAME_OPTIONS": "DENY", "DEBUG": False}


def test_without_a_secret_key_production_refuses_to_start():
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_a_malformed_boolean_is_a_clear_error():
    result = manage("check", env={**PRODUCTION, "DJANGO_DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be true or false, not 'maybe'" in result.stderr


@pytest.fixture
def bo_client(config, assignments, backoffice_user):
    OrderFactory(ordered_at=berlin(2026, 9, 1))
    client = Client()
    client.force_login(backoffice_user)
    return client


def test_back_office_pages_carry_a_content_security_policy(bo_client, support_user):
    for url in ("/orders/open-payments/", "/orders/open-payments/?dunning_level=1", "/accounts/login/"):
        csp = bo_client.get(url).headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert "unsafe-inline" not in csp


def test_back_office_html_has_no_inline_script_the_policy_would_block(bo_client):
    html = bo_client.get("/orders/open-payments/?dunning_level=1").content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> without src"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler attribute"
    assert not re.search(r"\sstyle\s*=", html), "inline style attribute (style-src 'self')"


# --- issue 18, item 10: the shipped .env.example passes the deploy check ---------------------------

def env_example() -> dict[str, str]:
    """The NAME=value lines of .env.example exactly as shipped (comments and blank lines skipped)."""
    values = {}
    for line in (django_settings.BASE_DIR / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _sep, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def only(env: dict[str, str]) -> dict[str, str]:
    """`env` and the process basics, nothing else of ours (no .env.dev either)."""
    basics = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "PYTHONPATH")}
    return {**basics, "MAHNWESEN_ENV_FILE": "", **env}


def test_the_shipped_env_example_values_need_only_the_secret_key():
    """Exactly .env.example: the one value it leaves for the operator, the secret key, is named."""
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=django_settings.BASE_DIR,
                            env=only(env_example()), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "manage.py: configuration error: DJANGO_SECRET_KEY is not set (set DJANGO_DEBUG=true for development)."]


def test_the_shipped_env_example_values_pass_the_deploy_check_without_a_warning():
    """.env.example with the secret key its first comment asks for: no warning at all; what is silenced
    on purpose (W008: the proxy redirects to https; W021: HSTS preload is opt-in) is listed in
    settings.SILENCED_SYSTEM_CHECKS with its reason, and nothing else is."""
    env = {**env_example(), "DJANGO_SECRET_KEY": "kT3v9-Qx7LmZ2pW8rY4sN6bH1cJ5dF0gA_eU-oI8uY7tR6eW5qA4sD3fG2"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=django_settings.BASE_DIR, env=only(env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (2 silenced)." in result.stdout
    code = "from django.conf import settings as s; print(s.SILENCED_SYSTEM_CHECKS, s.SECURE_SSL_REDIRECT)"
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=django_settings.BASE_DIR,
                            env=only(env), capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "['security.W008', 'security.W021'] False"


def test_without_the_proxy_declared_django_redirects_and_needs_the_trusted_proxy():
    env = {**env_example(), "DJANGO_SECRET_KEY": "kT3v9-Qx7LmZ2pW8rY4sN6bH1cJ5dF0gA_eU-oI8uY7tR6eW5qA4sD3fG2"}
    env.pop("DJANGO_HTTPS_REDIRECT_BY_PROXY")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=django_settings.BASE_DIR, env=only(env), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "accounts.W003" in result.stderr and "security.W008" not in result.stderr
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=django_settings.BASE_DIR, env=only({**env, "DJANGO_TRUSTED_PROXIES": "172.18.0.1"}),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
