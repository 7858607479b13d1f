"""Issue 18, item 9: after `make run`, the commands the README shows work in the same shell, with
nothing exported: `make run` leaves `.env.dev` (DJANGO_DEBUG=true) and manage.py reads it for what
the environment does not set. Run as the README says, in subprocesses with a clean environment."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

BASE = Path(django_settings.BASE_DIR)


def shell_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A shell's environment with nothing of ours set: no DJANGO_*, no database, broker or test settings."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL", "MAHNWESEN", "REDIS_URL", "CELERY",
                                  "CACHE_URL"))}
    return {**clean, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "MAHNWESEN_VAR_DIR": str(tmp_path),
            **extra}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_readme_commands_work_after_make_run_without_exporting_anything(tmp_path):
    dev_env = tmp_path / ".env.dev"
    # the step of `make run` that writes the file (the rest installs, migrates and starts the servers)
    subprocess.run(["make", "-s", str(dev_env), f"DEV_ENV={dev_env}"], cwd=BASE, check=True, timeout=60,
                   env=shell_env(tmp_path))
    assert "DJANGO_DEBUG=true" in dev_env.read_text()
    env = shell_env(tmp_path, MAHNWESEN_ENV_FILE=str(dev_env))

    for args in (["migrate", "--noinput"], ["seed_demo"], ["seed_demo", "--reset-passwords"]):
        result = manage(*args, env=env)
        assert result.returncode == 0, result.stderr
    assert "support" in result.stdout  # the new passwords are printed

    csv = tmp_path / "long.csv"
    csv.write_text("number;sales_account;payment_method;customer_name;customer_email;language;total;currency;"
                   "ordered_at;paid_at;cancelled_at\n"
                   "X-1;Webshop;invoice;Erika Mustermann;erika@example.com;;1.249,90;EUR;05.11.2026;;\n",
                   encoding="utf-8")
    result = manage("import_orders", str(csv), "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert "created 1" in result.stdout


def test_without_the_file_a_missing_setting_is_one_line_not_a_traceback(tmp_path):
    result = manage("import_orders", "x.csv", env=shell_env(tmp_path, MAHNWESEN_ENV_FILE=str(tmp_path / "none")))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "manage.py: configuration error: DJANGO_SECRET_KEY is not set (set DJANGO_DEBUG=true for development)."]


def test_the_environment_wins_over_the_file(tmp_path):
    dev_env = tmp_path / ".env.dev"
    dev_env.write_text("# comment\nDJANGO_DEBUG=true\nTIME_ZONE='Europe/Vienna'\n")
    code = "from django.conf import settings as s; print(s.DEBUG, s.TIME_ZONE)"
    env = shell_env(tmp_path, MAHNWESEN_ENV_FILE=str(dev_env), TIME_ZONE="UTC")
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["True", "UTC"]


def test_a_malformed_line_is_named(tmp_path):
    dev_env = tmp_path / ".env.dev"
    dev_env.write_text("DJANGO_DEBUG=true\nexport FOO BAR\n")
    result = manage("check", env=shell_env(tmp_path, MAHNWESEN_ENV_FILE=str(dev_env)))
    assert result.returncode == 1
    assert f"{dev_env}, line 2: expected NAME=value" in result.stderr and "Traceback" not in result.stderr
