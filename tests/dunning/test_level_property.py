"""Property: the database selector agrees with a plain-Python reading of docs/rules/dunning-levels.md, for
random orders, random configs and a random "now" (day boundaries and DST changes included)."""

import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunning import selectors
from dunning.models import DunningConfig, DunningLevel
from orders.models import Order
from tests.factories import PaymentMethodFactory, SalesAccountFactory

BERLIN = ZoneInfo("Europe/Berlin")
UTC = datetime.UTC
BASE = datetime.datetime(2026, 9, 1, tzinfo=UTC)
# Spans both DST changes of the window (25.10.2026 and 28.03.2027).
_any_minute = st.integers(min_value=0, max_value=240 * 24 * 60).map(lambda m: BASE + datetime.timedelta(minutes=m))


@st.composite
def _near_local_midnight(draw):
    """Instants right around a Berlin midnight, where an off-by-one in the day arithmetic shows."""
    day = draw(st.dates(datetime.date(2026, 9, 1), datetime.date(2027, 4, 30)))
    offset = draw(st.sampled_from([-61, -60, -1, 0, 1, 59, 60, 61]))
    midnight = datetime.datetime.combine(day, datetime.time.min, tzinfo=ZoneInfo("Europe/Berlin"))
    return (midnight + datetime.timedelta(minutes=offset)).astimezone(UTC)


instants = _any_minute | _near_local_midnight()


def local(d: datetime.datetime) -> datetime.date:
    return d.astimezone(BERLIN).date()


def reference_level(order: dict, config: dict | None, term: int, now: datetime.datetime):
    """docs/rules/dunning-levels.md "The rule", read literally."""
    if config is None or not config["is_active"]:
        return None
    if order["paid_at"] or order["cancelled_at"] or order["dunning_blocked"]:
        return None
    if order["total"] < config["minimum_amount"]:
        return None
    if config["only_orders_since"] and local(order["ordered_at"]) < config["only_orders_since"]:
        return None
    today = local(now)
    overdue = (today - (local(order["ordered_at"]) + datetime.timedelta(days=term))).days
    sent = order["reminders_sent"]
    if sent == 3:
        return DunningLevel.COMPLETED
    gap_ok = sent == 0 or (today - local(order["last_reminder_at"])).days >= config["min_days_between_reminders"]
    if sent == 0 and overdue >= config["level_1_days"]:
        return 1
    if sent == 1 and overdue >= config["level_2_days"] and gap_ok:
        return 2
    if sent == 2 and overdue >= config["level_3_days"] and gap_ok:
        return 3
    return None


@st.composite
def configs(draw):
    l1 = draw(st.integers(0, 20))
    l2 = l1 + draw(st.integers(1, 15))
    l3 = l2 + draw(st.integers(1, 15))
    return {
        "is_active": draw(st.sampled_from([True, True, True, False])),
        "level_1_days": l1, "level_2_days": l2, "level_3_days": l3,
        "min_days_between_reminders": draw(st.integers(0, 10)),
        "minimum_amount": draw(st.sampled_from([Decimal("0"), Decimal("10.00"), Decimal("50.00")])),
        "only_orders_since": draw(st.sampled_from([None, None, None, "x"]).flatmap(
            lambda v: st.none() if v is None else st.dates(datetime.date(2026, 5, 1), datetime.date(2027, 4, 30)))),
    }


def _before(now: datetime.datetime):
    """An instant up to 120 days before `now`: either any minute or right around a local midnight."""
    days_back = st.integers(0, 120)
    any_minute = st.integers(0, 24 * 60 - 1).map(lambda m: datetime.timedelta(minutes=m))
    return st.one_of(
        st.tuples(days_back, any_minute).map(lambda t: now - datetime.timedelta(days=t[0]) - t[1]),
        st.tuples(days_back, st.sampled_from([-61, -1, 0, 1, 59])).map(
            lambda t: datetime.datetime.combine(local(now) - datetime.timedelta(days=t[0]), datetime.time.min,
                                                tzinfo=BERLIN) + datetime.timedelta(minutes=t[1])),
    )


@st.composite
def orders(draw, now):
    ordered_at = draw(_before(now))
    sent = draw(st.integers(0, 3))
    last = None
    if sent:
        last = max(ordered_at, draw(_before(now)))
    maybe_instant = st.sampled_from([None, None, None, "x"]).flatmap(
        lambda v: st.none() if v is None else _before(now))
    return {
        "method": draw(st.integers(0, 2)),
        "ordered_at": ordered_at,
        "reminders_sent": sent,
        "last_reminder_at": last,
        "total": draw(st.sampled_from([Decimal("49.90"), Decimal("0.00"), Decimal("9.99"), Decimal("10.00"),
                                       Decimal("50.00"), Decimal("1200.00")])),
        "paid_at": draw(maybe_instant),
        "cancelled_at": draw(maybe_instant),
        "dunning_blocked": draw(st.sampled_from([False, False, False, True])),
    }


TERMS = [0, 14, 30]


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(cfgs=st.tuples(configs(), configs() | st.none(), configs() | st.none()), now=instants, data=st.data())
def test_selector_matches_reference(cfgs, now, data):
    order_list = data.draw(st.lists(orders(now), min_size=20, max_size=40), label="orders")
    account = SalesAccountFactory(name="Webshop")
    methods = [PaymentMethodFactory(code=f"m{i}", payment_term_days=term) for i, term in enumerate(TERMS)]
    DunningConfig.objects.all().delete()
    Order.objects.all().delete()
    for method, cfg in zip(methods, cfgs, strict=True):  # the first method always has a config
        if cfg is not None:
            DunningConfig.objects.create(sales_account=account, payment_method=method, **cfg)
    rows = [Order(sales_account=account, payment_method=methods[o["method"]], number=str(i), customer_name="X",
                  **{k: v for k, v in o.items() if k != "method"}) for i, o in enumerate(order_list)]
    Order.objects.bulk_create(rows)
    ids = dict(Order.objects.values_list("number", "id"))
    created = [(ids[str(i)], o) for i, o in enumerate(order_list)]
    active = selectors.active_configs()
    found = dict.fromkeys(selectors.ALL_LEVELS, 0)
    for level in selectors.ALL_LEVELS:
        got = set(selectors.orders_at_level(level, now=now, configs=active).values_list("id", flat=True))
        want = {order_id for order_id, o in created
                if reference_level(o, cfgs[o["method"]], TERMS[o["method"]], now) == level}
        assert got == want, f"level {level} at {now.astimezone(BERLIN)}"
        found[level] += len(got)
    _seen.append(found)
    # the same rule evaluated in Python on a loaded order (the API's read of one order)
    for order in Order.objects.all():
        annotated = Order.objects.filter(pk=order.pk).annotate(
            lv=selectors.level_annotation(now=now, configs=active)).values_list("lv", flat=True).get()
        assert selectors.order_level(order, now=now, configs=active) == annotated, order.number


_seen: list = []


def test_property_examples_reach_every_level(db):  # db: runs in the same group, right after
    """Guards the generator: the examples above must have put orders in every level."""
    if not _seen:
        pytest.skip("runs after test_selector_matches_reference")
    for level in selectors.ALL_LEVELS:
        assert sum(f[level] for f in _seen) > 0, f"no generated order reached level {level}"


# --- configs that share their terms: level_q states them once, for all their (account, method) pairs ---

_SHARED_TERMS = [
    {"is_active": True, "level_1_days": 7, "level_2_days": 14, "level_3_days": 21, "min_days_between_reminders": 7,
     "minimum_amount": Decimal("0"), "only_orders_since": None},
    {"is_active": True, "level_1_days": 3, "level_2_days": 10, "level_3_days": 20, "min_days_between_reminders": 2,
     "minimum_amount": Decimal("10.00"), "only_orders_since": None},
    {"is_active": False, "level_1_days": 7, "level_2_days": 14, "level_3_days": 21, "min_days_between_reminders": 7,
     "minimum_amount": Decimal("0"), "only_orders_since": None},
]


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(grid=st.lists(st.sampled_from([None, 0, 0, 1, 2]), min_size=9, max_size=9), now=instants, data=st.data())
def test_selector_matches_reference_when_configs_share_terms(grid, now, data):
    """Three accounts x three methods, each pair with one of a few term sets or none: the pairs of a
    term set form blocks that are and are not full cross products (IN lists of accounts x methods),
    and the orders of a pair without a config must stay at no level."""
    accounts = [SalesAccountFactory(name=f"Shop {i}") for i in range(3)]
    methods = [PaymentMethodFactory(code=f"m{i}", payment_term_days=term) for i, term in enumerate(TERMS)]
    DunningConfig.objects.all().delete()
    Order.objects.all().delete()
    cfg_of = {}
    for i, choice in enumerate(grid):
        account, method = accounts[i // 3], methods[i % 3]
        if choice is not None:
            DunningConfig.objects.create(sales_account=account, payment_method=method, **_SHARED_TERMS[choice])
            cfg_of[(account.pk, method.pk)] = _SHARED_TERMS[choice]
    order_list = data.draw(st.lists(st.tuples(orders(now), st.integers(0, 2)), min_size=30, max_size=50),
                           label="orders")
    Order.objects.bulk_create(
        Order(sales_account=accounts[a], payment_method=methods[o["method"]], number=str(i), customer_name="X",
              **{k: v for k, v in o.items() if k != "method"}) for i, (o, a) in enumerate(order_list))
    by_number = {o.number: o for o in Order.objects.all()}
    active = selectors.active_configs()
    for level in selectors.ALL_LEVELS:
        got = set(selectors.orders_at_level(level, now=now, configs=active).values_list("id", flat=True))
        want = set()
        for i, (o, a) in enumerate(order_list):
            method = methods[o["method"]]
            cfg = cfg_of.get((accounts[a].pk, method.pk))
            if reference_level(o, cfg, TERMS[o["method"]], now) == level:
                want.add(by_number[str(i)].pk)
        assert got == want, f"level {level}, grid {grid}"
    for order in Order.objects.all():
        annotated = Order.objects.filter(pk=order.pk).annotate(
            lv=selectors.level_annotation(now=now, configs=active)).values_list("lv", flat=True).get()
        assert selectors.order_level(order, now=now, configs=active) == annotated, order.number


def test_configs_with_the_same_terms_are_stated_once(db):
    """Nine configs of three accounts with the same days become one term: the SQL of a level does
    not grow with the number of configs that share their terms."""
    accounts = [SalesAccountFactory(name=f"Shop {i}") for i in range(3)]
    methods = [PaymentMethodFactory(code=f"m{i}", payment_term_days=14) for i in range(3)]
    for account in accounts:
        for method in methods:
            DunningConfig.objects.create(sales_account=account, payment_method=method, **_SHARED_TERMS[0])
    now = BASE
    qs = Order.objects.filter(selectors.level_q(1, now=now, configs=selectors.active_configs()))
    where = str(qs.order_by().values("pk").query).partition(" WHERE ")[2]
    assert where.count("ordered_at") == 1, where
    assert where.count("sales_account_id") == 1 and where.count("payment_method_id") == 1, where


def test_q_matches_uses_sqls_three_valued_logic():
    """NULL compared is unknown, NOT unknown stays unknown, and unknown is no match; lookups it
    cannot evaluate raise instead of guessing."""
    from django.db.models import F, Q

    order = Order(total=Decimal("10.00"), last_reminder_at=None, reminders_sent=0, paid_at=None)
    assert selectors.q_matches(Q(total__gte=Decimal("10")) & Q(paid_at__isnull=True), order)
    assert not selectors.q_matches(Q(last_reminder_at__lt=BASE), order)
    assert not selectors.q_matches(~Q(last_reminder_at__lt=BASE), order)  # NOT NULL < x is not true either
    assert selectors.q_matches(~Q(last_reminder_at__lt=BASE) | Q(reminders_sent__in=[0, 1]), order)
    assert not selectors.q_matches(selectors.NOTHING, order)
    for unsupported in (Q(customer_name__icontains="x"), Q(sales_account__name="x"), Q(total__gte=F("total"))):
        with pytest.raises(ValueError):
            selectors.q_matches(unsupported, order)
