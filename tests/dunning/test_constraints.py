"""Each database rule rejects what it should, on SQLite and PostgreSQL alike."""

import pytest
from django.db import IntegrityError, transaction

from accounts.models import SalesAccount
from dunning.models import DunningAutomation, DunningConfig, EmailTemplate, Reminder, ReminderAssignment
from orders.models import PaymentMethod
from tests.factories import (
    DunningConfigFactory,
    EmailTemplateFactory,
    OrderFactory,
    PaymentMethodFactory,
    ReminderAssignmentFactory,
    ReminderFactory,
    SalesAccountFactory,
    berlin,
)

pytestmark = pytest.mark.django_db


def rejected(create) -> None:
    """`create()` raises IntegrityError; the surrounding test transaction stays usable."""
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_sales_account_name_unique():
    SalesAccountFactory(name="Webshop")
    rejected(lambda: SalesAccount.objects.create(name="Webshop", sender_email="a@b.example"))


def test_payment_method_code_unique():
    PaymentMethodFactory(code="invoice")
    rejected(lambda: PaymentMethod.objects.create(code="invoice", name="Invoice again"))


def test_order_number_unique_per_account_but_not_across_accounts():
    webshop, ebay = SalesAccountFactory(name="Webshop"), SalesAccountFactory(name="eBay")
    OrderFactory(sales_account=webshop, number="1001")
    rejected(lambda: OrderFactory(sales_account=webshop, number="1001"))
    OrderFactory(sales_account=ebay, number="1001")  # same number, other account: fine


@pytest.mark.parametrize(("days", "ok"), [
    ((7, 14, 21), True),
    ((7, 7, 21), False),
    ((7, 14, 14), False),
    ((14, 7, 21), False),
    ((7, 21, 14), False),
])
def test_config_level_days_increase(days, ok):
    l1, l2, l3 = days
    build = lambda: DunningConfigFactory(level_1_days=l1, level_2_days=l2, level_3_days=l3)  # noqa: E731
    if ok:
        build()
    else:
        rejected(build)


@pytest.mark.parametrize("value", [0, 1, 2, 3])
def test_reminders_sent_accepts_0_to_3(value):
    OrderFactory(reminders_sent=value, last_reminder_at=berlin(2026, 11, 1, 9) if value else None)


def test_reminders_sent_rejects_4():
    rejected(lambda: OrderFactory(reminders_sent=4, last_reminder_at=berlin(2026, 11, 1, 9)))


def test_last_reminder_at_required_when_reminded():
    rejected(lambda: OrderFactory(reminders_sent=1, last_reminder_at=None))


def test_order_total_not_negative():
    rejected(lambda: OrderFactory(total="-0.01"))


def test_one_config_per_account_and_method():
    config = DunningConfigFactory()
    rejected(lambda: DunningConfig.objects.create(sales_account=config.sales_account,
                                                 payment_method=config.payment_method))


def test_one_assignment_per_account_and_level():
    assignment = ReminderAssignmentFactory(level=1)
    rejected(lambda: ReminderAssignment.objects.create(sales_account=assignment.sales_account, level=1,
                                                      template=assignment.template))


def test_assignment_level_1_to_3():
    template = EmailTemplateFactory()
    account = SalesAccountFactory()
    rejected(lambda: ReminderAssignment.objects.create(sales_account=account, level=4, template=template))


def test_one_template_per_name_and_language():
    EmailTemplateFactory(name="Zahlungserinnerung", language="de")
    EmailTemplateFactory(name="Zahlungserinnerung", language="en")  # other language: fine
    rejected(lambda: EmailTemplate.objects.create(name="Zahlungserinnerung", language="de", subject="x", body="y"))


@pytest.mark.parametrize("status", ["pending", "sent", "delivered", "bounced"])
def test_one_live_reminder_per_order_and_level(status):
    first = ReminderFactory(level=1, status=status)
    rejected(lambda: ReminderFactory(order=first.order, level=1, status=Reminder.Status.SENT))
    rejected(lambda: ReminderFactory(order=first.order, level=1, status=Reminder.Status.PENDING))
    ReminderFactory(order=first.order, level=2)  # another level: fine


def test_failed_reminders_do_not_count():
    first = ReminderFactory(level=1, status=Reminder.Status.FAILED)
    ReminderFactory(order=first.order, level=1, status=Reminder.Status.FAILED)  # two failed: fine
    ReminderFactory(order=first.order, level=1, status=Reminder.Status.SENT)  # and one live beside them
    assert Reminder.objects.filter(order=first.order, level=1).count() == 3


def test_reminder_level_1_to_3():
    rejected(lambda: ReminderFactory(level=0))


def test_dunning_automation_is_a_singleton():
    assert DunningAutomation.load().pk == 1  # migrations create it
    assert DunningAutomation.objects.count() == 1
    rejected(lambda: DunningAutomation.objects.create(pk=2))
    rejected(lambda: DunningAutomation.objects.create())
