"""Against the local Postmark simulator (scripts/provider_sim.py), on PostgreSQL: concurrent sends
exactly once, two runs at once, 429 with Retry-After, the rate limit, a run killed with SIGKILL mid
chunk and the next run finishing its work."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from django.conf import settings as django_settings
from django.db import connection

from dunning import services
from dunning.models import Reminder
from orders.models import Order
from scripts.provider_sim import ProviderSim, SimConfig
from tests.concurrency import run_in_threads
from tests.factories import DunningConfigFactory, OrderFactory, ReminderAssignmentFactory, berlin

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sim(require_postgres, settings):
    provider = ProviderSim(0, SimConfig(latency=0.01)).start()
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "sim", "POSTMARK_API_URL": provider.url}
    settings.DUNNING_SEND_CONCURRENCY = 32
    settings.DUNNING_SEND_RATE = None
    settings.DUNNING_BATCH_SIZE = 100
    yield provider
    provider.stop()


def due(n: int) -> list[Order]:
    config = DunningConfigFactory()
    ReminderAssignmentFactory(sales_account=config.sales_account, level=1)
    return [OrderFactory(ordered_at=berlin(2026, 9, 1, 12)) for _ in range(n)]


def assert_exactly_once(sim: ProviderSim, orders: list[Order]) -> None:
    emails = {o.customer_email for o in orders}
    assert set(sim.state.accepted) == emails, "every order got its reminder"
    assert max(sim.state.accepted.values()) == 1, "no reminder went out twice"
    assert Reminder.objects.filter(status="sent").count() == len(orders)
    assert not Reminder.objects.filter(status="pending").exists()
    assert set(Order.objects.values_list("reminders_sent", flat=True)) == {1}


def test_two_concurrent_runs_at_concurrency_32_send_each_reminder_once(sim, now):
    orders = due(400)
    runs = []
    run_in_threads(*[lambda: runs.append(services.dunning_run_execute(now=now)) for _ in range(2)])
    assert sum(r.sent for r in runs) == 400 and all(not r.error for r in runs)
    assert_exactly_once(sim, orders)


def test_429_with_retry_after_pauses_and_burns_no_attempt(sim, now, settings):
    sim.config.throttle_every = 10
    sim.config.retry_after = 0.2
    settings.DUNNING_SEND_RETRIES = 1  # a 429 that spent an attempt would fail the reminder
    orders = due(150)
    run = services.dunning_run_execute(now=now)
    assert run.sent == 150 and run.failed == 0, run.error
    assert sim.state.throttled >= 10
    assert_exactly_once(sim, orders)


def test_5xx_burst_is_retried(sim, now, settings):
    sim.config.error_burst = (5, 12)
    settings.DUNNING_RETRY_BACKOFF_SECONDS = 0.05
    orders = due(60)
    run = services.dunning_run_execute(now=now)
    assert run.sent + run.failed == 60 and sim.state.errors == 7
    sent = Reminder.objects.filter(status="sent").count()
    assert sent == run.sent and max(sim.state.accepted.values()) == 1
    assert len(orders) == 60


@pytest.mark.parametrize("redis", [False, True])
def test_rate_limit_is_honoured_by_two_runs_together(sim, now, settings, redis):
    if redis:
        url = os.environ.get("REDIS_URL", "")
        if not url:
            pytest.skip("needs REDIS_URL")
        import redis as redis_lib

        redis_lib.Redis.from_url(url).delete("dunning:send-rate")
        settings.REDIS_URL = url
    else:
        settings.REDIS_URL = ""
    settings.DUNNING_SEND_RATE = 100
    settings.DUNNING_BATCH_SIZE = 50
    orders = due(300)
    run_in_threads(*[lambda: services.dunning_run_execute(now=now) for _ in range(2)])
    assert_exactly_once(sim, orders)
    times = sorted(sim.state.call_times)
    rate = (len(times) - 1) / (times[-1] - times[0])
    # Honoured: never above the limit (10 % for the bucket's first burst and the clock). How close to
    # 100/s the two runs get is a speed, measured by `make bench` (100.2/s), not asserted here: on a
    # loaded 2-core machine the database's bucket gave 64/s.
    assert rate <= 110, rate
    per_second = Counter(int(t - times[0]) for t in times)
    assert max(per_second.values()) <= 110, per_second


def test_sigkill_mid_chunk_the_next_run_sends_what_was_never_handed_over(sim):
    sim.config.latency = 0.05
    orders = due(400)
    db = connection.settings_dict
    env = {**os.environ, **sim.anymail_env(), "DJANGO_DEBUG": "1", "DUNNING_BATCH_SIZE": "500",
           "DUNNING_SEND_CONCURRENCY": "8",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"}

    def run_dunning() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "manage.py", "run_dunning"], cwd=django_settings.BASE_DIR,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = run_dunning()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(sim.state.accepted.values()) < 100:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    killed_at = sum(sim.state.accepted.values())
    assert 100 <= killed_at < 400
    time.sleep(0.5)  # the server notices the dead session

    second = run_dunning()
    _out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err

    assert max(sim.state.accepted.values()) == 1, "a reminder went out twice"
    emails = {o.customer_email for o in orders}
    pending = set(Reminder.objects.filter(status="pending").values_list("recipient", flat=True))
    assert set(sim.state.accepted) | pending == emails, "every order was sent or is shown in flight"
    # only what the killed run had handed over and not yet written back is left unknown
    assert pending <= set(sim.state.accepted) | set(
        Reminder.objects.filter(status="pending").exclude(handed_at=None).values_list("recipient", flat=True))
    assert not Reminder.objects.filter(status="pending", handed_at=None).exists()
    assert len(pending) <= 8  # at most the concurrency: handed over and not yet written back
    assert len(sim.state.accepted) >= 400 - len(pending)
    assert Reminder.objects.exclude(status="failed").count() == 400


@pytest.mark.parametrize(("latency", "concurrency"), [(0.03, 8), (0.002, 3)])
def test_recording_thread_keeps_at_most_the_concurrency_handed_over_and_not_written_back(sim, now, settings, latency,
                                                                                       concurrency):
    """Answers are written back by a thread of their own; a slot is freed only once its reminder's
    result is committed. Read from another connection while the run sends: never more than the
    concurrency are handed over and still pending (what a crash would leave unknown)."""
    import threading

    from django.db import connections

    sim.config.latency = latency
    settings.DUNNING_SEND_CONCURRENCY = concurrency
    orders = due(300)
    seen: list[int] = []
    done = threading.Event()

    def watch():
        try:
            while not done.is_set():
                seen.append(Reminder.objects.filter(status="pending").exclude(handed_at=None).count())
        finally:
            connections.close_all()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run = services.dunning_run_execute(now=now)
    finally:
        done.set()
        watcher.join()
    assert run.sent == 300 and not run.error, run.error
    assert_exactly_once(sim, orders)
    assert len(seen) > 20 and max(seen) > 0, "the watcher saw the run at work"
    assert max(seen) <= concurrency, max(seen)


def test_a_process_learns_once_that_the_provider_makes_calls_wait(sim, now, settings):
    """The first chunk probes the provider with calls in the run's thread; the chunks after it in
    the same process go to the sending threads at once, and every reminder still goes out once."""
    from dunning.services import sending

    settings.DUNNING_BATCH_SIZE = 50
    orders = due(200)
    run = services.dunning_run_execute(now=now)
    assert run.sent == 200, run.error
    share, _at = sending._LEARNT[settings.EMAIL_BACKEND]
    assert share < sending.CPU_BOUND_SHARE
    assert_exactly_once(sim, orders)
