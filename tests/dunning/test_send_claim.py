"""Sending freezes the claim and the deadline into each reminder (docs/rules/claim.md), the claim
placeholders render in the customer's language, and the engine's queries per chunk stay constant."""

import datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dunning import services
from dunning.models import EmailTemplate, Reminder
from orders.models import Order
from tests.factories import OrderFactory, berlin


@pytest.fixture(autouse=True)
def locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []


@pytest.fixture
def claim_config(config):
    config.level_2_fee = Decimal("2.50")
    config.level_3_fee = Decimal("2.50")
    config.charge_interest = True
    config.charge_flat_fee_b2b = True
    config.save()
    return config


def send(orders, level, at):
    return services.reminders_send(order_ids=[o.id for o in orders], level=level, trigger="automatic", now=at)


def test_consumer_claim_frozen_at_levels_1_and_2(claim_config, assignments, now):
    EmailTemplate.objects.filter(name="Reminder 2").update(
        body="Offen: {{ claim.total_due }} (Zinsen {{ claim.interest }}, Gebühren {{ claim.fees }}) bis {{ deadline }}")
    order = OrderFactory(ordered_at=berlin(2026, 10, 1, 12))  # due 15.10.2026, consumer
    send([order], 1, now)  # Thu 26.11.2026
    first = Reminder.objects.get(order=order, level=1)
    # level 1: 26.11. + 7 = Thu 03.12.; a consumer is not in default yet and level 1 is free
    assert first.deadline == datetime.date(2026, 12, 3)
    assert first.claim_snapshot == {"principal": "49.90", "paid": "0.00", "fees": "0.00", "flat_fee": "0.00",
                                    "interest": "0.00", "total_due": "49.90"}
    later = now + datetime.timedelta(days=10)  # Sun 06.12.2026
    send([order], 2, later)
    second = Reminder.objects.get(order=order, level=2)
    # default from 04.12.: 04.-06.12. = 3 days at 1.27 + 5 = 6.27 %: 49.90 * 6.27 % * 3 / 365 = 0.025715 -> 0.03
    # fees: level 2 = 2.50; total 49.90 + 2.50 + 0.03 = 52.43; deadline 06.12. + 7 = Sun 13.12. -> Mon 14.12.
    assert second.deadline == datetime.date(2026, 12, 14)
    assert second.claim_snapshot == {"principal": "49.90", "paid": "0.00", "fees": "2.50", "flat_fee": "0.00",
                                     "interest": "0.03", "total_due": "52.43"}
    assert second.body == "Offen: 52,43\xa0€ (Zinsen 0,03\xa0€, Gebühren 2,50\xa0€) bis 14.12.2026"
    assert first.claim_snapshot["total_due"] == "49.90"  # the first reminder's figures stay as they were


def test_business_claim_with_flat_fee(claim_config, assignments, now):
    order = OrderFactory(ordered_at=berlin(2026, 10, 1, 12), customer_is_business=True, language="en")
    send([order], 1, now)
    reminder = Reminder.objects.get(order=order)
    # default from 16.10.: 16.10.-26.11. = 42 days at 1.27 + 9 = 10.27 %: 49.90 * 10.27 % * 42 / 365
    # = 0.589695 -> 0.59; flat fee 40.00 from the first reminder; total 49.90 + 40 + 0.59 = 90.49
    assert reminder.claim_snapshot == {"principal": "49.90", "paid": "0.00", "fees": "0.00", "flat_fee": "40.00",
                                       "interest": "0.59", "total_due": "90.49"}


def test_claim_costs_no_query_per_order(claim_config, assignments, now):
    """Level 2 reads the first deadlines once per chunk: the same queries for 2 orders as for 12."""
    def run(count: int) -> int:
        orders = [OrderFactory(ordered_at=berlin(2026, 10, 1, 12)) for _ in range(count)]
        send(orders, 1, now)
        with CaptureQueriesContext(connection) as queries:
            outcome = send(orders, 2, now + datetime.timedelta(days=10))
        assert len(outcome.sent) == count
        Order.objects.filter(id__in=[o.id for o in orders]).update(paid_at=now)  # out of the next run
        return len(queries)

    assert run(2) == run(12)


def test_a_partial_bank_payment_is_in_the_claim_a_reminder_states(claim_config, assignments, now):
    """The claim reads the payments matched to the order (payments app): a partial credit on the
    statement is `paid` and the total due shrinks by it; an unmatched credit counts for no one."""
    from payments.models import Payment

    order = OrderFactory(ordered_at=berlin(2026, 10, 1, 12))  # consumer, 49.90, at level 1 on `now`
    Payment.objects.create(order=order, amount=Decimal("20.00"), currency="EUR", booked_on=datetime.date(2026, 11, 20),
                           source_id="bank-1", matched_by="auto", matched_at=now)
    Payment.objects.create(order=None, amount=Decimal("29.90"), currency="EUR", booked_on=datetime.date(2026, 11, 20),
                           source_id="bank-2")
    send([order], 1, now)
    reminder = Reminder.objects.get(order=order)
    # no default before the first reminder's deadline: principal 49.90, paid 20.00, 29.90 due, nothing else
    assert reminder.claim_snapshot == {"principal": "49.90", "paid": "20.00", "fees": "0.00", "flat_fee": "0.00",
                                       "interest": "0.00", "total_due": "29.90"}


@pytest.mark.parametrize("others", [1, 60])  # 60: past common.bulk.COPY_MIN_ROWS, by COPY on PostgreSQL
def test_a_claim_that_conflicts_after_all_keeps_the_live_reminder_and_inserts_the_rest(config, assignments, now,
                                                                                       others):
    """The claim's reminders go in by COPY; should the unique constraint fire all the same (a live
    reminder written by something that did not lock the order), the row already there stands and
    the others are claimed."""
    import uuid

    from dunning.services.sending import SendBatch

    taken = OrderFactory(ordered_at=berlin(2026, 10, 1))
    free = [OrderFactory(ordered_at=berlin(2026, 10, 1)) for _ in range(others)]
    live = Reminder.objects.create(order=taken, level=1, trigger="manual", recipient="x@example.com", subject="s",
                                   body="b", created_at=now)
    batch = SendBatch(level=1, trigger="automatic", now=now, user=None, run=None, configs=[config])
    claim = uuid.uuid4()
    rows = [Reminder(order=o, level=1, trigger="automatic", recipient=o.customer_email, subject="s", body="b",
                     created_at=now, claim=claim) for o in (taken, *free)]
    claimed = batch._insert_claimed(rows, claim)
    assert set(claimed) == {o.id for o in free}
    assert Reminder.objects.get(order=taken, level=1) == live
    assert set(Reminder.objects.filter(pk__in=claimed.values()).values_list("claim", flat=True)) == {claim}
