"""The level rule against hand-computed cases (docs/rules/dunning-levels.md, "Worked examples").

Config: invoice with a 14-day term, levels at 7/14/21 days overdue, 7 days between reminders.
"Today" is 26.11.2026 in Europe/Berlin unless a case says otherwise."""

import datetime
from decimal import Decimal

import pytest

from dunning import selectors
from dunning.models import DunningLevel
from tests.factories import DunningConfigFactory, OrderFactory, PaymentMethodFactory, SalesAccountFactory, berlin

UTC = datetime.UTC
COMPLETED = DunningLevel.COMPLETED


def level_of(order, now):
    configs = selectors.active_configs()
    found = [lvl for lvl in selectors.ALL_LEVELS
             if selectors.orders_at_level(lvl, now=now, configs=configs).filter(pk=order.pk).exists()]
    assert len(found) <= 1, f"an order is in at most one level, got {found}"
    return found[0] if found else None


CASES = [
    # (id, order kwargs, expected level)
    ("L1 last local day", dict(ordered_at=berlin(2026, 11, 5, 23, 59, 59)), 1),
    ("L1 one day short", dict(ordered_at=berlin(2026, 11, 6, 0, 0)), None),
    ("L1 local date counts, not UTC (23:30 UTC = 00:30 next day)",
     dict(ordered_at=datetime.datetime(2026, 11, 5, 23, 30, tzinfo=UTC)), None),
    ("L1 22:59 UTC is still 5.11. in Berlin", dict(ordered_at=datetime.datetime(2026, 11, 5, 22, 59, tzinfo=UTC)), 1),
    ("L1 long overdue but nothing sent yet", dict(ordered_at=berlin(2026, 9, 1, 12)), 1),
    ("L2 exactly 14 overdue, gap exactly 7",
     dict(ordered_at=berlin(2026, 10, 29, 12), reminders_sent=1, last_reminder_at=berlin(2026, 11, 19, 23, 59)), 2),
    ("L2 gap 6 days", dict(ordered_at=berlin(2026, 10, 29, 12), reminders_sent=1,
                           last_reminder_at=berlin(2026, 11, 20, 0, 0)), None),
    ("L2 only 13 overdue", dict(ordered_at=berlin(2026, 10, 30, 12), reminders_sent=1,
                                last_reminder_at=berlin(2026, 11, 10, 9)), None),
    ("L3 exactly 21 overdue", dict(ordered_at=berlin(2026, 10, 22, 8), reminders_sent=2,
                                   last_reminder_at=berlin(2026, 11, 19, 9)), 3),
    ("L3 only 20 overdue", dict(ordered_at=berlin(2026, 10, 23, 8), reminders_sent=2,
                                last_reminder_at=berlin(2026, 11, 1, 9)), None),
    ("L3 gap 0", dict(ordered_at=berlin(2026, 9, 1, 8), reminders_sent=2, last_reminder_at=berlin(2026, 11, 26, 8)),
     None),
    ("completed", dict(ordered_at=berlin(2026, 9, 1, 8), reminders_sent=3, last_reminder_at=berlin(2026, 11, 26, 8)),
     COMPLETED),
    ("completed is not about days", dict(ordered_at=berlin(2026, 11, 25, 8), reminders_sent=3,
                                         last_reminder_at=berlin(2026, 11, 26, 8)), COMPLETED),
    ("paid", dict(ordered_at=berlin(2026, 9, 1, 8), paid_at=berlin(2026, 11, 1, 8)), None),
    ("paid and completed", dict(ordered_at=berlin(2026, 9, 1, 8), reminders_sent=3,
                                last_reminder_at=berlin(2026, 10, 1), paid_at=berlin(2026, 11, 1, 8)), None),
    ("cancelled", dict(ordered_at=berlin(2026, 9, 1, 8), cancelled_at=berlin(2026, 11, 1, 8)), None),
    ("blocked", dict(ordered_at=berlin(2026, 9, 1, 8), dunning_blocked=True), None),
    ("blocked and completed", dict(ordered_at=berlin(2026, 9, 1, 8), dunning_blocked=True, reminders_sent=3,
                                   last_reminder_at=berlin(2026, 10, 1)), None),
    ("below minimum amount", dict(ordered_at=berlin(2026, 9, 1, 8), total=Decimal("9.99")), None),
    ("exactly the minimum amount", dict(ordered_at=berlin(2026, 9, 1, 8), total=Decimal("10.00")), 1),
    ("ordered before only_orders_since", dict(ordered_at=berlin(2026, 6, 30, 23, 59)), None),
    ("ordered on only_orders_since at midnight", dict(ordered_at=berlin(2026, 7, 1, 0, 0)), 1),
]


@pytest.mark.parametrize(("order_kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_level_table(db, now, order_kwargs, expected):
    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", payment_term_days=14)
    DunningConfigFactory(sales_account=account, payment_method=invoice, minimum_amount=Decimal("10.00"),
                         only_orders_since=datetime.date(2026, 7, 1))
    kwargs = {"total": Decimal("49.90"), **order_kwargs}
    order = OrderFactory(sales_account=account, payment_method=invoice, **kwargs)
    assert level_of(order, now) == expected


def test_inactive_config_puts_no_order_in_any_level(db, now):
    config = DunningConfigFactory(is_active=False)
    order = OrderFactory(sales_account=config.sales_account, payment_method=config.payment_method,
                         ordered_at=berlin(2026, 9, 1, 8))
    done = OrderFactory(sales_account=config.sales_account, payment_method=config.payment_method,
                        ordered_at=berlin(2026, 9, 1, 8), reminders_sent=3, last_reminder_at=berlin(2026, 10, 1))
    assert level_of(order, now) is None
    assert level_of(done, now) is None


def test_order_without_config_is_in_no_level(db, now):
    DunningConfigFactory()  # invoice config of Webshop
    other_method = PaymentMethodFactory(code="paypal", payment_term_days=0)
    order = OrderFactory(payment_method=other_method, ordered_at=berlin(2026, 9, 1, 8))
    assert level_of(order, now) is None


@pytest.mark.parametrize(("now", "ordered_at", "expected"), [
    # Autumn: 25.10.2026 has 25 hours (03:00 CEST -> 02:00 CET). Prepayment, level 1 after 7 days.
    (berlin(2026, 11, 1, 0, 30), berlin(2026, 10, 25, 0, 0), 1),
    (berlin(2026, 11, 1, 0, 30), berlin(2026, 10, 25, 23, 59), 1),
    (berlin(2026, 11, 1, 0, 30), berlin(2026, 10, 26, 0, 0), None),
    (berlin(2026, 10, 31, 23, 59), berlin(2026, 10, 24, 12, 0), 1),
    (berlin(2026, 10, 31, 23, 59), berlin(2026, 10, 25, 0, 0), None),
    # Spring: 28.03.2027 has 23 hours (02:00 CET -> 03:00 CEST).
    (berlin(2027, 4, 4, 0, 0, 30), berlin(2027, 3, 28, 23, 59), 1),
    (berlin(2027, 4, 4, 0, 0, 30), berlin(2027, 3, 29, 0, 0), None),
    (berlin(2027, 4, 3, 23, 59, 59), berlin(2027, 3, 27, 0, 0), 1),
    (berlin(2027, 4, 3, 23, 59, 59), berlin(2027, 3, 28, 0, 0), None),
    # "now" given in UTC: 25.11. 23:30 UTC is already 26.11. in Berlin.
    (datetime.datetime(2026, 11, 25, 23, 30, tzinfo=UTC), berlin(2026, 11, 19, 12), 1),
    (datetime.datetime(2026, 11, 25, 22, 30, tzinfo=UTC), berlin(2026, 11, 19, 12), None),
])
def test_day_boundaries_and_daylight_saving(db, now, ordered_at, expected):
    prepayment = PaymentMethodFactory(code="prepayment", is_prepayment=True, payment_term_days=0)
    config = DunningConfigFactory(payment_method=prepayment)
    order = OrderFactory(sales_account=config.sales_account, payment_method=prepayment, ordered_at=ordered_at)
    assert level_of(order, now=now) == expected


def test_gap_counts_calendar_days_across_dst(db):
    """Last reminder on 25.10.2026 23:30 CET, gap 7: level 2 from 01.11. 00:00, not 7*24 h later."""
    config = DunningConfigFactory(level_1_days=1, level_2_days=2, level_3_days=3)
    order = OrderFactory(sales_account=config.sales_account, payment_method=config.payment_method,
                         ordered_at=berlin(2026, 9, 1, 12), reminders_sent=1,
                         last_reminder_at=berlin(2026, 10, 25, 23, 30))
    assert level_of(order, now=berlin(2026, 10, 31, 23, 59)) is None
    assert level_of(order, now=berlin(2026, 11, 1, 0, 0)) == 2


def test_level_annotation_agrees_with_filters(db, now):
    config = DunningConfigFactory()
    kw = dict(sales_account=config.sales_account, payment_method=config.payment_method)
    orders = {
        1: OrderFactory(ordered_at=berlin(2026, 9, 1), **kw),
        2: OrderFactory(ordered_at=berlin(2026, 9, 1), reminders_sent=1, last_reminder_at=berlin(2026, 10, 1), **kw),
        3: OrderFactory(ordered_at=berlin(2026, 9, 1), reminders_sent=2, last_reminder_at=berlin(2026, 10, 1), **kw),
        4: OrderFactory(ordered_at=berlin(2026, 9, 1), reminders_sent=3, last_reminder_at=berlin(2026, 10, 1), **kw),
        None: OrderFactory(ordered_at=berlin(2026, 11, 25), **kw),
    }
    from orders.models import Order

    configs = selectors.active_configs()
    annotated = dict(Order.objects.annotate(level=selectors.level_annotation(now=now, configs=configs))
                     .values_list("id", "level"))
    assert annotated == {o.id: lvl for lvl, o in orders.items()}


def test_unknown_level_is_refused(db, now):
    with pytest.raises(ValueError, match="unknown dunning level"):
        selectors.level_q(5, now=now, configs=[])
