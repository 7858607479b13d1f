"""A real Redis broker and a real Celery worker process against the PostgreSQL test database:
the job task and the tick, enqueued (not eager), run in the worker, and the reminder e-mail is
written by the file e-mail backend.

Skipped with a reason unless the database is PostgreSQL (the worker process must see the test's
committed data) and Redis is reachable (REDIS_URL, default redis://127.0.0.1:6379/0; the test
uses its own queue name, so it never takes another process's tasks)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from dunning.models import DunningAutomation, DunningRun, Reminder
from tests.factories import OrderFactory, berlin

BASE_DIR = Path(settings.BASE_DIR)
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
WAIT_SECONDS = 60

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def _redis_unreachable_reason() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:
        return f"needs a Redis server at {REDIS_URL} ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture
def redis_broker() -> str:
    reason = _redis_unreachable_reason()
    if reason:
        pytest.skip(reason)
    return REDIS_URL


def _postgres_url() -> str:
    s = connection.settings_dict
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = s.get("HOST") or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{s['NAME']}"


@pytest.fixture
def postgres_test_database() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...): a worker process cannot see an in-memory "
                    "SQLite test database")


@pytest.fixture
def worker(postgres_test_database, redis_broker, tmp_path):
    """A `celery -A config worker` process on the test database and its own queue."""
    queue = f"mahnwesen-test-{uuid.uuid4().hex[:12]}"
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _postgres_url(),
        "CELERY_BROKER_URL": redis_broker,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_TASK_DEFAULT_QUEUE": queue,  # a run's chunk tasks too
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "true",
        "DUNNING_RETRY_BACKOFF_SECONDS": "0",
        "MAHNWESEN_VAR_DIR": str(tmp_path / "var"),  # files the worker writes (exports) under var/media
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-c", "1", "-Q", queue,
               "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    producer = Celery("mahnwesen-test-producer", broker=redis_broker)
    producer.conf.task_default_queue = queue
    try:
        yield {"producer": producer, "queue": queue, "mail_dir": mail_dir, "log": log_path, "process": process,
               "media": tmp_path / "var" / "media"}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        producer.close()


def _wait_for(condition, *, what: str, worker) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        if worker["process"].poll() is not None or "raised unexpected" in worker["log"].read_text(errors="replace"):
            break
        time.sleep(0.25)
    log = worker["log"].read_text(errors="replace")[-4000:]
    pytest.fail(f"no {what} (worker exited, a task failed or {WAIT_SECONDS}s passed); worker log:\n{log}")


@pytest.mark.django_db(transaction=True)
def test_job_and_tick_run_in_a_real_worker_over_redis(worker, config, assignments, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    order = OrderFactory(number="W-4711", ordered_at=berlin(2020, 1, 2, 12), customer_email="kunde@example.com")

    # 1. the job task, enqueued over the broker
    worker["producer"].send_task("dunning.tasks.run_dunning_job", args=[DunningRun.Trigger.COMMAND],
                                 queue=worker["queue"])
    _wait_for(lambda: DunningRun.objects.filter(trigger="command", finished_at__isnull=False).exists(),
              what="the DunningRun of run_dunning_job", worker=worker)
    run = DunningRun.objects.get(trigger="command")
    assert run.sent == 1, (run.details, run.error)
    # one file per opened connection (the job opens one per level): find the one with the message
    def mails() -> list[str]:
        return [t for t in (p.read_text() for p in worker["mail_dir"].iterdir()) if t.strip()]

    _wait_for(lambda: mails(), what="the reminder e-mail file", worker=worker)
    [mail] = mails()
    assert "To: kunde@example.com" in mail
    assert "W-4711" in mail  # the subject: Zahlungserinnerung zu Bestellung W-4711
    assert "From: billing@webshop.example" in mail
    reminder = Reminder.objects.get(order=order)
    assert reminder.status == Reminder.Status.SENT and reminder.level == 1

    # 2. the beat tick, switched on: two ticks in a row give one scheduled run
    DunningAutomation.objects.get_or_create(pk=1)
    DunningAutomation.objects.filter(pk=1).update(enabled=True, interval_minutes=60, last_scheduled_run_at=None)
    worker["producer"].send_task("dunning.tasks.automation_tick", queue=worker["queue"])
    worker["producer"].send_task("dunning.tasks.automation_tick", queue=worker["queue"])
    _wait_for(lambda: DunningRun.objects.filter(trigger="scheduled", finished_at__isnull=False).exists(),
              what="the scheduled DunningRun", worker=worker)
    time.sleep(1)  # let the second tick arrive: it must find the interval not over
    assert DunningRun.objects.filter(trigger="scheduled").count() == 1
    automation = DunningAutomation.objects.get(pk=1)
    assert automation.last_scheduled_run_at is not None and automation.lease_owner == ""


@pytest.mark.django_db(transaction=True)
def test_a_large_excel_export_is_written_by_a_real_worker(worker, config, settings):
    """The task is registered in the worker process (backoffice.apps) and writes the file where the
    web's download finds it (the media directory both share)."""
    import io

    from django.utils import timezone
    from openpyxl import load_workbook

    from backoffice.models import ExportJob

    settings.CELERY_TASK_ALWAYS_EAGER = False
    for number in ("X-2", "X-1"):
        OrderFactory(number=number, ordered_at=berlin(2020, 1, 2, 12))
    job = ExportJob.objects.create(params=[["o", "number"]], language="en", created_at=timezone.now(), total=2)
    worker["producer"].send_task("backoffice.tasks.render_export", kwargs={"job_id": job.pk}, queue=worker["queue"])
    _wait_for(lambda: ExportJob.objects.filter(pk=job.pk, finished_at__isnull=False).exists(),
              what="the finished export", worker=worker)
    job.refresh_from_db()
    assert job.error == "" and job.done == job.total == 2
    sheet = load_workbook(io.BytesIO((worker["media"] / job.file.name).read_bytes())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Order number" and [r[0] for r in rows[1:]] == ["X-1", "X-2"]
