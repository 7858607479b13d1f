"""The open orders' totals the database keeps (orders.open_totals), on SQLite and PostgreSQL:

- the triggers keep them equal to the open orders, whatever writes them (save, update, bulk_update,
  bulk_create, the COPY of common.bulk, raw SQL, delete), before and after a fold;
- the overview's totals read from them equal the totals read from the orders (`level_totals`) for
  generated orders, configs, filters and instants (day boundaries and DST changes included), and
  they fall back to the orders where the buckets cannot answer."""

from __future__ import annotations

import datetime
from collections import Counter
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backoffice.selectors import level_totals, open_totals_by_level
from common.bulk import insert_rows
from dunning import selectors
from dunning.models import DunningConfig
from orders import open_totals
from orders.models import OPEN, OpenTotal, OpenTotalDelta, Order
from tests.dunning.test_level_property import BASE, TERMS, _before, configs, instants, orders
from tests.factories import OrderFactory, PaymentMethodFactory, SalesAccountFactory

ZERO = Decimal("0.00")


def stored(groups: bool = False) -> dict:
    """The totals as the tables hold them: folded buckets plus the deltas, per key (zeros left out);
    `groups`: the group rows (GROUP_DAY) instead of the day rows, the deltas counted in their group."""
    state: dict = {}
    for model in (OpenTotal, OpenTotalDelta):
        rows = model.objects.values(*open_totals.KEY, "n", "amount")
        if model is OpenTotal:
            rows = rows.filter(ordered_day=open_totals.GROUP_DAY) if groups else rows.exclude(
                ordered_day=open_totals.GROUP_DAY)
        for row in rows:
            if groups:
                row.update(ordered_day=open_totals.GROUP_DAY, reminded_day=open_totals.NO_DAY)
            key = tuple(row[c] for c in open_totals.KEY)
            n, amount = state.get(key, (0, ZERO))
            state[key] = (n + row["n"], amount + Decimal(str(row["amount"])).quantize(Decimal("0.01")))
    return {k: v for k, v in state.items() if v != (0, ZERO)}


def expected() -> dict:
    """The totals recomputed in Python from the open orders (orders.open_totals.key_days)."""
    state: dict = {}
    for o in Order.objects.filter(OPEN):
        key = (o.sales_account_id, o.payment_method_id, o.currency, o.dunning_blocked, o.reminders_sent,
               *open_totals.key_days(o.ordered_at, o.last_reminder_at, o.reminders_sent, django_settings.TIME_ZONE))
        n, amount = state.get(key, (0, ZERO))
        state[key] = (n + 1, amount + o.total)
    return state


def grouped(state: dict) -> dict:
    out: dict = {}
    for key, (n, amount) in state.items():
        group = (*key[:5], open_totals.GROUP_DAY, open_totals.NO_DAY)
        m, total = out.get(group, (0, ZERO))
        out[group] = (m + n, total + amount)
    return {k: v for k, v in out.items() if v != (0, ZERO)}


def check() -> None:
    assert stored() == expected()
    assert stored(groups=True) == grouped(expected())
    open_totals.fold()
    assert not OpenTotalDelta.objects.exists()
    assert not OpenTotal.objects.filter(n=0).exists()
    assert stored() == expected()
    assert stored(groups=True) == grouped(expected())


@pytest.fixture
def shop(db):
    accounts = [SalesAccountFactory(name="Webshop"), SalesAccountFactory(name="Amazon")]
    methods = [PaymentMethodFactory(code="invoice", payment_term_days=14), PaymentMethodFactory(code="paypal")]
    return accounts, methods


def test_the_triggers_keep_the_totals_through_every_writer(shop):
    accounts, methods = shop
    now = datetime.datetime(2026, 10, 25, 0, 30, tzinfo=datetime.UTC)  # the night of a DST change
    made = [OrderFactory(sales_account=accounts[i % 2], payment_method=methods[i % 2], number=f"S{i}",
                         ordered_at=now - datetime.timedelta(hours=7 * i), total=Decimal("10.00") + i)
            for i in range(12)]
    check()
    a, b, c, d, e, f, g, h = made[:8]
    a.paid_at = now
    a.save()  # paid
    b.cancelled_at = now
    b.save(update_fields=["cancelled_at"])  # cancelled
    c.reminders_sent, c.last_reminder_at = 1, now
    c.save()  # a reminder sent
    d.dunning_blocked = True
    d.save()  # blocked
    e.total, e.currency = Decimal("99.95"), "CHF"
    e.save()  # amount and currency changed
    f.sales_account = accounts[1 - f.sales_account_id % 2]
    f.save()  # account changed
    g.customer_email = "other@example.com"
    g.save()  # a change the totals do not care about: no delta
    check()
    deltas_before = OpenTotalDelta.objects.count()
    Order.objects.filter(pk=g.pk).update(customer_name="Y")
    assert OpenTotalDelta.objects.count() == deltas_before
    # set-based updates: reminders sent long after the order (the order day is clamped), reopened
    Order.objects.filter(pk__in=[made[8].pk, made[9].pk]).update(
        reminders_sent=2, last_reminder_at=now + datetime.timedelta(days=200))
    Order.objects.filter(pk=a.pk).update(paid_at=None)
    check()
    # bulk_update of several fields
    for i, o in enumerate(made[8:12]):
        o.refresh_from_db()
        o.total = Decimal("1.00") * (i + 1)
        o.dunning_blocked = i % 2 == 0
    Order.objects.bulk_update(made[8:12], ["total", "dunning_blocked"])
    check()
    # bulk_create, and the COPY of common.bulk (PostgreSQL: 50 rows or more)
    Order.objects.bulk_create([Order(sales_account=accounts[0], payment_method=methods[1], number=f"B{i}",
                                     customer_name="X", total=Decimal("5.00"), ordered_at=now) for i in range(3)])
    insert_rows(Order, [Order(sales_account=accounts[1], payment_method=methods[0], number=f"C{i}", customer_name="X",
                              total=Decimal("7.50"), ordered_at=now - datetime.timedelta(days=i), currency="GBP",
                              updated_at=now, reminders_sent=i % 3, last_reminder_at=now if i % 3 else None)
                        for i in range(60)])
    check()
    # raw SQL, then deletes
    with connection.cursor() as cursor:
        cursor.execute("UPDATE orders_order SET total = total + 1, reminders_sent = 3, last_reminder_at = %s "
                       "WHERE number LIKE %s", [now, "C1%"])
        cursor.execute("UPDATE orders_order SET paid_at = %s WHERE number LIKE %s", [now, "C2%"])
    check()
    Order.objects.filter(number__startswith="C3").delete()
    h.delete()
    check()
    Order.objects.all().delete()
    check()
    assert not OpenTotal.objects.exists()


def test_the_fold_adds_to_the_buckets_and_drops_empty_ones(shop):
    accounts, methods = shop
    now = BASE
    one = OrderFactory(sales_account=accounts[0], payment_method=methods[0], ordered_at=now, total=Decimal("3.00"))
    OrderFactory(sales_account=accounts[0], payment_method=methods[0], ordered_at=now, total=Decimal("4.00"))
    assert open_totals.fold() == 2  # a delta row per statement, one bucket per key
    [bucket] = OpenTotal.objects.exclude(ordered_day=open_totals.GROUP_DAY)
    [group] = OpenTotal.objects.filter(ordered_day=open_totals.GROUP_DAY)
    assert (bucket.n, bucket.amount) == (group.n, group.amount) == (2, Decimal("7.00"))
    Order.objects.filter(pk=one.pk).update(paid_at=now)
    Order.objects.exclude(pk=one.pk).update(cancelled_at=now)
    open_totals.fold()
    assert not OpenTotal.objects.exists() and not OpenTotalDelta.objects.exists()


# --- the overview's totals: buckets = orders -------------------------------------------------------------


def _direct(now, active, where):
    qs = Order.objects.filter(**where)
    return level_totals(qs, now=now, configs=active)


def _as_tuple(totals):
    return (totals.counts, totals.sums, totals.all_count, totals.all_sums)


_answered: Counter = Counter()


@pytest.mark.django_db
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(cfgs=st.tuples(configs(), configs() | st.none(), configs() | st.none()), plain=st.booleans(),
       now=instants, data=st.data())
def test_bucket_totals_equal_the_orders_totals(cfgs, plain, now, data):
    order_list = data.draw(st.lists(st.tuples(orders(now), st.integers(0, 1), st.sampled_from(["EUR", "EUR", "CHF"])),
                                    min_size=20, max_size=40), label="orders")
    accounts = [SalesAccountFactory(name="Webshop"), SalesAccountFactory(name="Amazon")]
    methods = [PaymentMethodFactory(code=f"m{i}", payment_term_days=term) for i, term in enumerate(TERMS)]
    DunningConfig.objects.all().delete()
    Order.objects.all().delete()
    for i, (method, cfg) in enumerate(zip(methods, cfgs, strict=True)):
        if cfg is None:
            continue
        if plain:  # what the buckets answer: no minimum amount, no first order day
            cfg = {**cfg, "minimum_amount": Decimal("0"), "only_orders_since": None}
        for account in accounts[: 1 + i % 2]:  # the second account has some configs
            DunningConfig.objects.create(sales_account=account, payment_method=method, **cfg)
    Order.objects.bulk_create(
        Order(sales_account=accounts[a], payment_method=methods[o["method"]], number=str(i), customer_name="X",
              currency=currency, **{k: v for k, v in o.items() if k != "method"})
        for i, (o, a, currency) in enumerate(order_list))
    if data.draw(st.booleans(), label="fold first"):
        open_totals.fold()
    # later changes: some paid, some reminded again (deltas on top of folded buckets)
    for order in Order.objects.order_by("id")[:5]:
        if order.reminders_sent < 3 and order.paid_at is None:
            Order.objects.filter(pk=order.pk).update(reminders_sent=order.reminders_sent + 1,
                                                     last_reminder_at=data.draw(_before(now), label="reminded"))
    active = selectors.active_configs()
    where = data.draw(st.sampled_from([{}, {"payment_method_id": methods[1].pk}, {"dunning_blocked": False},
                                       {"currency": "CHF"}, {"sales_account_id": accounts[1].pk,
                                                             "dunning_blocked": True}]), label="where")
    from_buckets = open_totals_by_level(now=now, configs=active, where=where)
    if from_buckets is None:
        assert not plain, "plain configs within CLAMP_DAYS are answered from the buckets"
        _answered["orders"] += 1
        return
    _answered["buckets"] += 1
    assert _as_tuple(from_buckets) == _as_tuple(_direct(now, active, where)), f"{where} at {now}"
    for level, n in from_buckets.counts.items():
        _answered[level] += n


def test_bucket_examples_reached_every_level(db):
    """Guards the generator of the test above."""
    if not _answered:
        pytest.skip("runs after test_bucket_totals_equal_the_orders_totals")
    assert _answered["buckets"] > 20 and _answered["orders"] > 5, _answered
    for level in selectors.ALL_LEVELS:
        assert _answered[level] > 0, f"no order at level {level} answered from the buckets"


def _one_config(**changes):
    account = SalesAccountFactory(name="Webshop")
    invoice = PaymentMethodFactory(code="invoice", payment_term_days=14)
    DunningConfig.objects.create(sales_account=account, payment_method=invoice, is_active=True, **changes)
    OrderFactory(sales_account=account, payment_method=invoice, ordered_at=BASE - datetime.timedelta(days=300),
                 reminders_sent=2, last_reminder_at=BASE - datetime.timedelta(days=10), total=Decimal("20.00"))
    return selectors.active_configs()


@pytest.mark.parametrize("changes", [
    {"minimum_amount": Decimal("5.00")},
    {"only_orders_since": datetime.date(2025, 1, 1)},
    {"level_3_days": open_totals.CLAMP_DAYS, "min_days_between_reminders": 0},  # 90 + 14 - 0 > 90
])
def test_what_the_buckets_cannot_answer_is_read_from_the_orders(db, changes):
    active = _one_config(**changes)
    assert open_totals_by_level(now=BASE, configs=active, where={}) is None
    totals = level_totals(Order.objects.filter(OPEN), now=BASE, configs=active, where={})
    assert _as_tuple(totals) == _as_tuple(_direct(BASE, active, {}))
    assert totals.counts[3] == 1


def test_another_time_zone_than_the_triggers_reads_the_orders(db):
    active = _one_config()
    assert open_totals_by_level(now=BASE, configs=active, where={}) is not None
    with override_settings(TIME_ZONE="America/New_York"):
        assert open_totals_by_level(now=BASE, configs=active, where={}) is None


def test_install_for_another_time_zone_rebuilds_the_totals(db):
    _one_config()
    OrderFactory(ordered_at=datetime.datetime(2026, 3, 1, 2, 30, tzinfo=datetime.UTC))  # 1 March in Berlin,
    try:                                                                                 # 28 Feb in New York
        with override_settings(TIME_ZONE="America/New_York"):
            open_totals.install()
            assert open_totals.usable()
            assert stored() == expected()
            assert datetime.date(2026, 2, 28) in {key[5] for key in stored()}
            assert stored(groups=True) == grouped(expected())
    finally:
        open_totals.install()
    assert open_totals.usable() and stored() == expected()


def test_the_rebuild_command_recomputes_the_totals(db):
    from io import StringIO

    from django.core.management import call_command

    _one_config()
    OpenTotal.objects.all().delete()  # lost, as if the table were damaged
    OpenTotalDelta.objects.all().delete()
    out = StringIO()
    call_command("rebuild_open_totals", stdout=out)
    assert "rebuilt for Europe/Berlin" in out.getvalue()
    assert stored() == expected() and stored(groups=True) == grouped(expected())
