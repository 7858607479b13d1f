"""The run fanned out over Celery workers: a real Redis broker, two `celery worker` processes on the
PostgreSQL test database and the Postmark simulator (scripts/provider_sim.py) as the provider.
The job task splits the due orders into chunk tasks that both workers take; every reminder goes
out exactly once, the run row sums its chunks and ends; a worker killed with SIGKILL mid-chunk
leaves at most the concurrency in the unknown state and the next run finishes its work; the rate
limit holds across both workers.

Skipped with a reason unless the database is PostgreSQL and Redis is reachable (see
test_celery_integration.py); each test uses its own queue name."""

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

from dunning.models import DunningRun, DunningRunChunk, Reminder
from orders.models import Order
from scripts.provider_sim import ProviderSim, SimConfig
from tests.factories import DunningConfigFactory, OrderFactory, ReminderAssignmentFactory, berlin
from tests.integration.test_celery_integration import _postgres_url

BASE_DIR = Path(settings.BASE_DIR)
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(require_postgres, tmp_path):
    """Start workers (`start(n, **env)`) on one fresh queue; a producer sends tasks there."""
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"needs a Redis server at {REDIS_URL} ({type(exc).__name__}: {exc})")
    queue = f"mahnwesen-fanout-{uuid.uuid4().hex[:12]}"
    processes: list[tuple[subprocess.Popen, Path]] = []

    def start(count: int, **extra: str) -> list[tuple[subprocess.Popen, Path]]:
        env = {**os.environ, "DATABASE_URL": _postgres_url(), "CELERY_BROKER_URL": REDIS_URL,
               "CELERY_TASK_ALWAYS_EAGER": "false", "CELERY_TASK_DEFAULT_QUEUE": queue,
               "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "true",
               "DUNNING_RETRY_BACKOFF_SECONDS": "0", **extra}
        started = []
        for _ in range(count):
            log = tmp_path / f"worker-{len(processes)}.log"
            name = f"{queue}-{len(processes)}@%h"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-c", "1", "-Q",
                     queue, "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", name],
                    cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
            processes.append((process, log))
            started.append((process, log))
        return started

    producer = Celery("mahnwesen-fanout-producer", broker=REDIS_URL)
    producer.conf.task_default_queue = queue
    try:
        yield {"start": start, "producer": producer, "queue": queue}
    finally:
        for process, _log in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _log in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        producer.close()
        with redis.Redis.from_url(REDIS_URL) as r:
            r.delete(queue, "dunning:send-rate")


@pytest.fixture
def sim(require_postgres):
    provider = ProviderSim(0, SimConfig(latency=0.01)).start()
    yield provider
    provider.stop()


def due(n: int) -> list[Order]:
    config = DunningConfigFactory()
    ReminderAssignmentFactory(sales_account=config.sales_account, level=1)
    return [OrderFactory(ordered_at=berlin(2026, 9, 1, 12)) for _ in range(n)]


def wait_for(condition, what: str, workers, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    logs = "\n".join(log.read_text(errors="replace")[-2000:] for _process, log in workers)
    pytest.fail(f"no {what} within {seconds:g} s; worker logs:\n{logs}")


def run_job(cluster) -> None:
    cluster["producer"].send_task("dunning.tasks.run_dunning_job", args=[DunningRun.Trigger.COMMAND])


def finished_runs():
    return DunningRun.objects.filter(finished_at__isnull=False)


def chunks_taken_by(workers) -> list[int]:
    """How many chunk tasks each worker ran (from its log)."""
    return [log.read_text(errors="replace").count("dunning.tasks.send_chunk[") // 2 for _process, log in workers]


def test_two_workers_share_the_chunks_and_send_each_reminder_once(cluster, sim):
    orders = due(400)
    workers = cluster["start"](2, **sim.anymail_env(), DUNNING_BATCH_SIZE="50", DUNNING_SEND_CONCURRENCY="32")
    run_job(cluster)
    wait_for(lambda: finished_runs().exists(), "finished run", workers)
    run = DunningRun.objects.get()
    assert (run.sent, run.failed, run.skipped, run.error) == (400, 0, 0, "")
    assert run.details["chunks"] == 8 and not DunningRunChunk.objects.filter(finished_at=None).exists()
    assert sum(DunningRunChunk.objects.values_list("sent", flat=True)) == 400
    assert all(taken >= 1 for taken in chunks_taken_by(workers)), chunks_taken_by(workers)
    assert set(sim.state.accepted) == {o.customer_email for o in orders}
    assert max(sim.state.accepted.values()) == 1, "a reminder went out twice"
    assert Reminder.objects.filter(status="sent").count() == 400
    assert set(Order.objects.values_list("reminders_sent", flat=True)) == {1}


def test_rate_limit_holds_across_two_workers(cluster, sim):
    orders = due(400)
    workers = cluster["start"](2, **sim.anymail_env(), DUNNING_BATCH_SIZE="50", DUNNING_SEND_RATE="100",
                               REDIS_URL=REDIS_URL)
    run_job(cluster)
    wait_for(lambda: finished_runs().exists(), "finished run", workers)
    assert DunningRun.objects.get().sent == 400
    assert max(sim.state.accepted.values()) == 1 and len(sim.state.accepted) == len(orders)
    assert all(taken >= 1 for taken in chunks_taken_by(workers)), chunks_taken_by(workers)
    times = sorted(sim.state.call_times)
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 85 <= rate <= 105, rate


def test_worker_killed_mid_chunk_the_next_run_finishes_its_work(cluster, sim):
    sim.config.latency = 0.05
    orders = due(300)
    env = {**sim.anymail_env(), "DUNNING_BATCH_SIZE": "100", "DUNNING_SEND_CONCURRENCY": "8"}
    [(first, first_log)] = cluster["start"](1, **env)
    run_job(cluster)
    wait_for(lambda: sum(sim.state.accepted.values()) >= 50, "50 messages accepted", [(first, first_log)])
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = sum(sim.state.accepted.values())
    assert killed_at < 300
    killed_run = DunningRun.objects.get()
    assert killed_run.finished_at is None
    time.sleep(0.5)  # the server notices the dead session

    workers = cluster["start"](2, **env)
    # the worker that died had the first chunk unacknowledged: the broker gives it back only after its
    # visibility timeout; the next run finds the chunk's lock free and queues it again
    run_job(cluster)
    wait_for(lambda: finished_runs().count() == 2, "both runs finished", workers)

    assert max(sim.state.accepted.values()) == 1, "a reminder went out twice"
    emails = {o.customer_email for o in orders}
    pending = set(Reminder.objects.filter(status="pending").values_list("recipient", flat=True))
    assert set(sim.state.accepted) | pending == emails, "every order was sent or is shown in flight"
    assert not Reminder.objects.filter(status="pending", handed_at=None).exists()
    assert len(pending) <= 8, "at most the concurrency is left unknown"
    assert Reminder.objects.exclude(status="failed").count() == 300
    killed_run.refresh_from_db()
    second = DunningRun.objects.exclude(pk=killed_run.pk).get()
    assert not DunningRunChunk.objects.filter(finished_at=None).exists()
    sent = Reminder.objects.filter(status="sent")
    assert killed_run.sent + second.sent == sent.count() == 300 - len(pending)
    assert killed_run.sent == sent.filter(run=killed_run).count()
