"""A worker killed with SIGKILL in the middle of a run, then run again: no reminder twice, none
lost, the reminders whose fate the killed process took with it are shown as in flight."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from dunning.models import Reminder
from orders.models import Order
from tests.factories import DunningConfigFactory, OrderFactory, ReminderAssignmentFactory, berlin

pytestmark = pytest.mark.django_db(transaction=True)
ORDERS = 120


def run_dunning(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "run_dunning"], cwd=settings.BASE_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_run_then_restart(require_postgres, tmp_path: Path):
    config = DunningConfigFactory()
    ReminderAssignmentFactory(sales_account=config.sales_account, level=1)
    for _ in range(ORDERS):
        OrderFactory(ordered_at=berlin(2026, 9, 1, 12))
    db = connection.settings_dict
    log = tmp_path / "sent.log"
    env = {**os.environ, "DJANGO_DEBUG": "1", "FAKE_ESP_LOG": str(log), "FAKE_ESP_DELAY": "0.02",
           "EMAIL_BACKEND": "tests.fake_esp.AppendLogBackend", "DUNNING_BATCH_SIZE": "50",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"}
    first = run_dunning(env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 30):
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = len(log.read_text().splitlines())
    assert 30 <= killed_at < ORDERS

    second = run_dunning(env)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err

    lines = log.read_text().splitlines()
    per_recipient = Counter(line.split()[0] for line in lines)
    assert max(per_recipient.values()) == 1, "a reminder went out twice"
    emails = dict(Order.objects.values_list("customer_email", "id"))
    pending = set(Reminder.objects.filter(status="pending").values_list("order__customer_email", flat=True))
    sent_recorded = set(Reminder.objects.filter(status="sent").values_list("order__customer_email", flat=True))
    assert set(per_recipient) | pending == set(emails), "every order was either sent or is shown in flight"
    assert sent_recorded <= set(per_recipient)
    assert pending, "the killed run left in-flight reminders for staff to resolve"
    assert len(pending) <= 50  # at most the chunk the killed process had claimed
    assert Reminder.objects.exclude(status="failed").count() == ORDERS  # one per order, never two
