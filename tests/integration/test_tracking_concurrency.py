"""Delivery tracking under concurrency, on PostgreSQL: the same provider event arriving several times
at once is recorded once."""

import copy
import uuid

import pytest

from dunning.models import Reminder, TrackingEvent
from dunning.tracking import reminder_track_event
from orders.models import OrderEvent
from tests.concurrency import run_in_threads
from tests.dunning.test_tracking import metadata, status_of
from tests.factories import ReminderFactory


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("known", [True, False], ids=["known-message", "unknown-message"])
def test_the_same_event_twice_at_the_same_time_is_recorded_once(require_postgres, known):
    reminder = ReminderFactory(status=Reminder.Status.SENT, message_id=str(uuid.uuid4()))
    kwargs = dict(message_id=reminder.message_id if known else str(uuid.uuid4()), event_type="bounced",
                  event_id="4323372036", timestamp=None, description="Hard bounce", provider="Postmark",
                  metadata=metadata(reminder) if known else {})
    results = run_in_threads(*[lambda: reminder_track_event(**copy.deepcopy(kwargs))] * 4)
    assert sum(r is not None for r in results) == 1
    assert TrackingEvent.objects.count() == 1
    assert OrderEvent.objects.filter(action="reminder_bounced").count() == (1 if known else 0)
    assert status_of(reminder) == (Reminder.Status.BOUNCED if known else Reminder.Status.SENT)
