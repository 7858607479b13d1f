"""`manage.py seed_demo`: idempotent, every dunning level populated, consistent dunning state, guarded
by DEBUG."""

import re
from collections import Counter
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Max
from django.utils import timezone

from demo.planner import order_specs
from demo.writer import demo_seed
from dunning import selectors
from dunning.models import EmailTemplate, Reminder, ReminderAssignment
from orders.models import Order, OrderEvent
from orders.services import BulkResult, BulkSkip, orders_unblock_dunning
from tests.demo.rules import level_on_seed_day

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _debug_and_fast_hashing(settings):
    settings.DEBUG = True  # pytest-django runs tests with DEBUG off
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()
            if model._meta.app_label in {"accounts", "orders", "dunning", "auth"}}


def passwords(output: str) -> dict[str, str]:
    return dict(re.findall(r"user '(\w+)': password (\S+)", output))


def test_second_run_changes_nothing():
    first_output = seed()
    first = counts()
    second_output = seed()
    assert counts() == first
    assert first["orders.Order"] >= 200
    assert first["dunning.Reminder"] > 50
    assert first["accounts.SalesAccount"] == 3
    assert first["orders.PaymentMethod"] == 4
    assert first["dunning.ReminderAssignment"] == 9
    assert "Order: 300 (300 created)" in first_output
    assert "Order: 300 (0 created)" in second_output
    assert set(passwords(first_output)) == {"support", "backoffice"}
    assert passwords(second_output) == {}


def test_orders_are_the_same_every_time():
    assert [(s.account, s.number, s.total) for s in order_specs()] == [
        (s.account, s.number, s.total) for s in order_specs()]


def test_users_and_passwords():
    output = seed()
    pw = passwords(output)
    support, backoffice = User.objects.get(username="support"), User.objects.get(username="backoffice")
    assert support.is_superuser and support.is_staff
    assert backoffice.is_staff and not backoffice.is_superuser
    assert list(backoffice.groups.values_list("name", flat=True)) == ["Back office"]
    assert support.check_password(pw["support"]) and backoffice.check_password(pw["backoffice"])

    seed()
    support.refresh_from_db()
    assert support.check_password(pw["support"])  # not re-set on a second run

    new = passwords(seed("--reset-passwords"))
    support.refresh_from_db()
    assert new["support"] != pw["support"]
    assert support.check_password(new["support"])


def test_refuses_without_debug_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off") as excinfo:
        seed()
    assert excinfo.value.returncode == 1
    assert "\n" not in str(excinfo.value)
    assert not Order.objects.exists()
    assert not User.objects.filter(username__in=["support", "backoffice"]).exists()
    seed("--force")
    assert Order.objects.exists()
    assert User.objects.filter(username__in=["support", "backoffice"]).count() == 2


def test_every_level_has_orders_today():
    seed()
    now = timezone.now()
    configs = selectors.active_configs()
    for level in selectors.ALL_LEVELS:
        assert selectors.orders_at_level(level, now=now, configs=configs).exists(), level
    # level 1 on every account
    level_1 = Counter(selectors.orders_at_level(1, now=now, configs=configs)
                      .values_list("sales_account__name", flat=True))
    assert set(level_1) == {"Webshop", "eBay", "Amazon"}


def test_every_level_at_a_fixed_time(now):
    demo_seed(now=now)
    for level in selectors.ALL_LEVELS:
        assert selectors.orders_at_level(level, now=now).count() >= 3, level


def test_orders_in_every_state():
    seed()
    assert Order.objects.filter(paid_at__isnull=False).exists()
    assert Order.objects.filter(cancelled_at__isnull=False).exists()
    assert Order.objects.filter(reservation_released_at__isnull=False).exists()
    blocked = Order.objects.filter(dunning_blocked=True)
    assert blocked.exists() and not blocked.filter(dunning_block_reason="").exists()
    assert Order.objects.filter(flagged_for_cancellation_at__isnull=False, cancelled_at__isnull=True).exists()
    assert Order.objects.filter(customer_email="", paid_at__isnull=True).exists()
    assert Order.objects.filter(language="en").exists()
    assert Order.objects.filter(sales_account__name="Amazon", language="de").exists()
    open_english = Order.objects.filter(language="en", paid_at__isnull=True, cancelled_at__isnull=True)
    assert selectors.orders_at_level(1, now=timezone.now(), queryset=open_english).exists()


def test_reminder_rows_match_the_orders():
    seed()
    reminded = Order.objects.filter(reminders_sent__gt=0).annotate(last_sent=Max("reminders__sent_at"))
    assert reminded.exists()
    for order in reminded.prefetch_related("reminders"):
        levels = sorted(r.level for r in order.reminders.all())
        assert levels == list(range(1, order.reminders_sent + 1)), order
        assert {r.status for r in order.reminders.all()} == {Reminder.Status.SENT}
        assert order.last_reminder_at == order.last_sent
        assert order.customer_email
        assert all(r.recipient == order.customer_email and r.subject and order.number in r.subject
                   for r in order.reminders.all())
        if order.paid_at:
            assert order.paid_at > order.last_reminder_at
        if order.cancelled_at:
            assert order.cancelled_at > order.last_reminder_at
    assert not Reminder.objects.filter(order__reminders_sent=0).exists()
    assert not Order.objects.filter(reminders_sent=0, last_reminder_at__isnull=False).exists()


def test_templates_are_valid_and_assigned():
    seed()
    for template in EmailTemplate.objects.all():
        template.full_clean()
    assert EmailTemplate.objects.exclude(html_body="").exists()
    assert set(EmailTemplate.objects.values_list("language", flat=True)) == {"de", "en"}
    automatic = set(ReminderAssignment.objects.filter(send_automatically=True)
                    .values_list("sales_account__name", "level"))
    assert automatic == {("Webshop", 1), ("Webshop", 2)}
    amazon = ReminderAssignment.objects.get(sales_account__name="Amazon", level=1)
    assert amazon.template.language == "en"


def test_plan_levels_match_the_level_rule(now):
    """The planner's unit tests read levels off the plan with tests/demo/rules.py; here the real
    rule reads them off the seeded orders, and both must agree on every order."""
    demo_seed(now=now)
    annotated = {(account, number): level for account, number, level in Order.objects.annotate(
        level=selectors.level_annotation(now=now, configs=selectors.active_configs()),
    ).values_list("sales_account__name", "number", "level")}
    planned = {(s.account, s.number): level_on_seed_day(s) for s in order_specs()}
    assert {key: "completed" if level == 4 else level for key, level in annotated.items()} == planned


def test_history_is_written_through_the_services(now):
    demo_seed(now=now)
    backoffice = User.objects.get(username="backoffice")
    events = Counter(OrderEvent.objects.values_list("action", flat=True))
    orders = Order.objects.all()
    assert events["imported"] == orders.count()
    assert events["reminder_sent"] == Reminder.objects.count()
    assert events["marked_paid"] == orders.filter(paid_at__isnull=False).count()
    assert events["dunning_blocked"] == orders.filter(dunning_blocked=True).count()
    auto = events["auto_cancel"] + events["auto_cancel_and_release_reservation"]
    assert events["import_updated"] + auto == orders.filter(cancelled_at__isnull=False).count()
    assert events["auto_flag"] == orders.filter(flagged_for_cancellation_at__isnull=False).count()
    assert events["auto_cancel_and_release_reservation"] == orders.filter(
        reservation_released_at__isnull=False).count()
    for event in OrderEvent.objects.filter(action="marked_paid").select_related("order"):
        assert event.at == event.order.paid_at and event.user == backoffice
    for event in OrderEvent.objects.filter(action="import_updated").select_related("order"):
        assert event.details["fields"] == ["cancelled_at"] and event.at == event.order.cancelled_at
    for event in OrderEvent.objects.filter(action="dunning_blocked").select_related("order"):
        assert event.details["reason"] == event.order.dunning_block_reason
    reminders = {r.id: r for r in Reminder.objects.all()}
    for event in OrderEvent.objects.filter(action="reminder_sent"):
        reminder = reminders.pop(event.details["reminder"])
        assert (reminder.order_id, reminder.level, reminder.sent_at, reminder.sent_by_id, reminder.trigger) == (
            event.order_id, event.details["level"], event.at, event.user_id, event.details["trigger"])
    assert not reminders
    # the audit trail reads in order: nothing happens to an order before it was placed or after now
    for order in orders.prefetch_related("events"):
        assert all(order.ordered_at < e.at <= now for e in order.events.all()), order


def test_existing_orders_are_left_alone(now):
    demo_seed(now=now)
    blocked = Order.objects.filter(dunning_blocked=True).first()
    orders_unblock_dunning(order_ids=[blocked.id], user=None, now=now)
    gone = Order.objects.filter(paid_at__isnull=False).first()
    gone_number = gone.number
    gone.delete()
    result = demo_seed(now=now)
    assert result.created["Order"] == 1 and result.passwords == {}
    blocked.refresh_from_db()
    assert not blocked.dunning_blocked  # not blocked again
    assert Order.objects.get(number=gone_number).paid_at is not None  # the missing one is back, paid


def test_a_service_refusing_the_plan_stops_the_command_and_writes_nothing(monkeypatch):
    def refuse(*, order_ids, **kwargs):
        order_ids = list(order_ids)
        return BulkResult(skipped=dict.fromkeys(order_ids, BulkSkip.NOT_OPEN))

    monkeypatch.setattr("demo.writer.orders_mark_paid", refuse)
    with pytest.raises(CommandError, match="the demo plan does not fit the rules") as excinfo:
        seed()
    assert "\n" not in str(excinfo.value)
    assert not Order.objects.exists() and not User.objects.filter(username="support").exists()
