"""The shipped docker-compose.yml and .env.example: nothing is published beyond the host's loopback,
the mail catcher exists only in the development profile, and production mail does not go to it.

The attack (an outside probe): Mailpit's UI was published on all interfaces without a login and all
mail went there, password-reset links included; the app port was published on all interfaces too,
so its forwarded headers could be forged by anyone (see test_forwarded_headers.py)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    """The active (not commented) assignments of .env.example."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def published_host_ips(service: dict) -> list[str]:
    """The host address of every published port; a short-syntax port without one binds all interfaces."""
    ips = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ips.append(port.get("host_ip", "0.0.0.0"))
        else:  # "127.0.0.1:8000:8000", "[::1]:8000:8000"; "8000:8000" or "${PORT:-8000}:8000" bind all
            match = re.match(r"(\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:.]+\]):", str(port))
            ips.append(match.group(1) if match else "0.0.0.0")
    return ips


def test_every_published_port_binds_the_loopback_only(compose):
    published = {name: published_host_ips(service) for name, service in compose["services"].items()}
    assert published["web"] == ["127.0.0.1"]
    assert all(ip == "127.0.0.1" for ips in published.values() for ip in ips), published


def test_mailpit_is_only_in_the_development_profile(compose):
    assert compose["services"]["mailpit"]["profiles"] == ["dev"]
    default = {name for name, service in compose["services"].items() if not service.get("profiles")}
    assert default == {"db", "redis", "migrate", "web", "worker", "beat"}


def test_production_mail_does_not_default_to_the_catcher(compose):
    """Neither the compose file nor the example .env sends mail to Mailpit unless a developer says so."""
    for name, service in compose["services"].items():
        if service.get("profiles"):
            continue
        assert "mailpit" not in str(service.get("environment", {})).lower(), name
        assert "mailpit" not in str(service.get("depends_on", {})).lower(), name
    env = env_example()
    assert "mailpit" not in " ".join(env.values()).lower()
    backend = env.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    assert backend == "django.core.mail.backends.console.EmailBackend" or backend.startswith("anymail.backends.")


def test_the_example_env_enables_nothing_risky():
    env = env_example()
    assert "DJANGO_BEHIND_PROXY" not in env
    assert env.get("DJANGO_TRUSTED_PROXIES", "") == ""  # to be filled in with the proxy's address
    assert env.get("DJANGO_PASSWORD_RESET", "false") == "false"


def test_the_web_processes_share_one_cache_for_the_reset_limits(compose):
    assert compose["services"]["web"]["environment"]["CACHE_URL"].startswith("redis://redis:6379/")
