"""The overview at scale (issue 6): the shapes of its queries, and proofs that the faster forms
count the same orders as the level rule.

- `level_counts` (one COUNT subquery per level) gives `orders_at_level(...).count()`, on random
  orders, configs and instants.
- `notify_plan` (one GROUP BY over the orders due) gives what the earlier form (an aggregate
  plus a GROUP BY, each with its EXISTS per order) gave, on random orders and reminders.
- A level-filtered page takes its count from the level tab (no second COUNT), reads the ids of
  its page first and its rows after, in the order of the sort; the queries per page are constant."""

import datetime
import random
from decimal import Decimal

import pytest
from django.db import connection, models
from django.db.models import Count, Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backoffice import selectors
from backoffice.selectors import (
    _PAGE_ROWS,
    CappedPaginator,
    _page_rows_query,
    bounced_exists,
    count_each,
    level_counts,
    notify_plan,
    open_orders,
)
from dunning import selectors as dunning_selectors
from dunning.models import DunningConfig, Reminder, ReminderAssignment
from dunning.selectors import (
    ALL_LEVELS,
    active_configs,
    claims_today,
    level_q,
    local_midnight,
    local_today,
    orders_at_level,
)
from dunning.services import TemplateResolver
from orders.models import OPEN, Order
from payments.models import Payment
from tests.dunning.test_level_property import TERMS, configs, instants, orders
from tests.factories import (
    DunningConfigFactory,
    EmailTemplateFactory,
    OrderFactory,
    PaymentMethodFactory,
    ReminderAssignmentFactory,
    ReminderFactory,
    SalesAccountFactory,
)

URL = "/orders/open-payments/"
NOTIFY = URL + "notify/"


# --- the level counts count what the level rule selects -------------------------------------------


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(cfgs=st.tuples(configs(), configs() | st.none(), configs() | st.none()), now=instants, data=st.data())
def test_level_counts_match_the_rule(cfgs, now, data):
    order_list = data.draw(st.lists(orders(now), min_size=20, max_size=40), label="orders")
    account = SalesAccountFactory(name="Webshop")
    methods = [PaymentMethodFactory(code=f"m{i}", payment_term_days=term) for i, term in enumerate(TERMS)]
    DunningConfig.objects.all().delete()
    Order.objects.all().delete()
    for method, cfg in zip(methods, cfgs, strict=True):
        if cfg is not None:
            DunningConfig.objects.create(sales_account=account, payment_method=method, **cfg)
    Order.objects.bulk_create(
        Order(sales_account=account, payment_method=methods[o["method"]], number=str(i), customer_name="X",
              **{k: v for k, v in o.items() if k != "method"})
        for i, o in enumerate(order_list)
    )
    active = active_configs()
    everything, open_only, some = Order.objects.all(), Order.objects.filter(OPEN), Order.objects.filter(total__gte=10)
    for qs in (everything, open_only, some):
        assert level_counts(qs, now=now, configs=active) == {
            level: orders_at_level(level, now=now, configs=active, queryset=qs).count() for level in ALL_LEVELS
        }


def test_level_counts_without_active_configs_runs_no_query(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert level_counts(Order.objects.all(), now=timezone.now(), configs=[]) == dict.fromkeys(ALL_LEVELS, 0)


def test_count_each_counts_each_queryset_in_one_query(place, django_assert_num_queries):
    place(10, number="A")
    place(10, number="B", customer_email="")
    place(30, sent=3, number="C")
    querysets = [
        Order.objects.all(),
        Order.objects.filter(customer_email=""),
        Order.objects.filter(number="nothing"),
        open_orders(now=timezone.now(), configs=active_configs()).filter(reminders_sent=3),
    ]
    with django_assert_num_queries(1):
        assert count_each(*querysets) == [3, 1, 0, 1]


# --- notify_plan: the same plan as the aggregate + GROUP BY it replaced ----------------------------


def reference_plan(selection, *, level, now, configs) -> dict:
    """The plan's numbers, groups and preview order as the earlier implementation computed them."""
    selection = selection.order_by()
    selected = selection.count()
    at_level = dunning_selectors.orders_at_level(level, now=now, configs=configs, queryset=selection)
    due = dunning_selectors.orders_due(level, now=now, configs=configs, automatic=False, queryset=selection)
    assigned = ReminderAssignment.objects.filter(level=level).values("sales_account_id")
    due = due.annotate(address_bounced=bounced_exists())
    has_email = ~Q(customer_email="")
    counts = due.aggregate(
        due=Count("pk"),
        no_email=Count("pk", filter=Q(customer_email="")),
        bounced=Count("pk", filter=has_email & Q(address_bounced=True)),
        no_template=Count("pk", filter=has_email & Q(address_bounced=False) & ~Q(sales_account_id__in=assigned)),
    )
    n_at_level = at_level.count()
    resolver = TemplateResolver(level)
    sendable = due.exclude(customer_email="").filter(address_bounced=False)
    rows = (
        sendable.values("sales_account_id", "sales_account__name", "sales_account__language", "language")
        .annotate(n=Count("pk"))
        .order_by("sales_account__name", "language")
    )
    merged: dict = {}
    for row in rows:
        language = row["language"] or row["sales_account__language"]
        key = (row["sales_account_id"], language)
        if key in merged:
            merged[key][3] += row["n"]
            continue
        template = resolver.template_for(row["sales_account_id"], language)
        merged[key] = [row["sales_account__name"], language, template.pk if template else None, row["n"]]
    preview = sendable.filter(sales_account_id__in=assigned).order_by("id").first()
    return {
        "selected": selected,
        "not_at_level": selected - n_at_level,
        "in_flight": n_at_level - counts["due"],
        "no_email": counts["no_email"],
        "bounced": counts["bounced"],
        "no_template": counts["no_template"],
        "will_send": counts["due"] - counts["no_email"] - counts["bounced"] - counts["no_template"],
        "groups": [tuple(group) for group in merged.values()],
        "preview": preview.pk if preview else None,
    }


def as_dict(plan) -> dict:
    return {
        "selected": plan.selected,
        "not_at_level": plan.not_at_level,
        "in_flight": plan.in_flight,
        "no_email": plan.no_email,
        "bounced": plan.bounced,
        "no_template": plan.no_template,
        "will_send": plan.will_send,
        "groups": [(g.account_name, g.language, g.template.pk if g.template else None, g.count) for g in plan.groups],
        "preview": plan.preview_order.pk if plan.preview_order else None,
    }


def _random_orders(rng: random.Random, today: datetime.date, n: int = 60) -> None:
    """Orders of three accounts (two with templates, one without; German and English) around
    every level, with blank addresses, bounced addresses, reminders in flight and failed ones."""
    invoice = PaymentMethodFactory(code="invoice", payment_term_days=14)
    accounts = [SalesAccountFactory(name="Webshop", language="de"), SalesAccountFactory(name="Amazon", language="en"),
                SalesAccountFactory(name="eBay", language="de")]
    for account in accounts:
        DunningConfigFactory(sales_account=account, payment_method=invoice)
    EmailTemplateFactory(name="Reminder 1", language="en", subject="Reminder {{ order.number }}")
    EmailTemplateFactory(name="Reminder 2", language="en", subject="Second reminder {{ order.number }}")
    for account in accounts[:2]:
        for level in (1, 2, 3):
            ReminderAssignmentFactory(sales_account=account, level=level)
    for i in range(n):
        sent = rng.choice([0, 0, 1, 1, 2, 3])
        overdue = rng.randrange(0, 40)
        last = local_midnight(today - datetime.timedelta(days=rng.randrange(1, 15))) + datetime.timedelta(hours=9)
        order = OrderFactory(
            sales_account=rng.choice(accounts),
            payment_method=invoice,
            number=f"R{i:03d}",
            customer_email=rng.choice(["", f"c{i}@example.com", f"c{i}@example.com", f"c{i}@example.com"]),
            language=rng.choice(["", "", "de", "en"]),
            ordered_at=local_midnight(today - datetime.timedelta(days=overdue + 14)) + datetime.timedelta(hours=12),
            reminders_sent=sent,
            last_reminder_at=last if sent else None,
            paid_at=timezone.now() if rng.random() < 0.1 else None,
            dunning_blocked=rng.random() < 0.1,
        )
        for level in range(1, sent + 1):
            status = rng.choice([Reminder.Status.SENT, Reminder.Status.DELIVERED, Reminder.Status.BOUNCED])
            ReminderFactory(order=order, level=level, status=status, recipient=order.customer_email or "x@example.com",
                            created_at=last, sent_at=last)
        if sent < 3 and rng.random() < 0.25:  # the next level's reminder: in flight, or failed
            status = rng.choice([Reminder.Status.PENDING, Reminder.Status.FAILED])
            ReminderFactory(order=order, level=sent + 1, status=status, created_at=timezone.now())


@pytest.mark.parametrize("seed", range(6))
def test_notify_plan_matches_the_earlier_form(db, seed):
    rng = random.Random(seed)
    now = timezone.now()
    _random_orders(rng, local_today(now))
    configs = active_configs()
    everything = open_orders(now=now, configs=configs)
    some_ids = Order.objects.filter(pk__in=rng.sample(list(Order.objects.values_list("pk", flat=True)), 25))
    for level in (1, 2, 3):
        for selection in (everything.filter(level_q(level, now=now, configs=configs)), everything, some_ids):
            plan = notify_plan(selection, level=level, now=now, configs=configs)
            assert as_dict(plan) == reference_plan(selection, level=level, now=now, configs=configs), (seed, level)


def test_notify_plan_reaches_every_skip_reason(db):
    """Guards the generator of the test above."""
    seen = dict.fromkeys(("not_at_level", "in_flight", "no_email", "bounced", "no_template", "will_send"), 0)
    for seed in range(6):
        Order.objects.all().delete()
        now = timezone.now()
        _random_orders(random.Random(seed), local_today(now))
        configs = active_configs()
        for level in (1, 2, 3):
            plan = as_dict(notify_plan(open_orders(now=now, configs=configs), level=level, now=now, configs=configs))
            for reason in seen:
                seen[reason] += plan[reason]
    assert all(seen.values()), seen


# --- the page: one COUNT for a level page, ids before rows, constant queries ----------------------


def _counts(queries) -> list[str]:
    """The queries that count orders: a COUNT, or the sums of the open orders' totals (orders.open_totals)."""
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() or "orders_opentotal" in q["sql"]]


@pytest.mark.parametrize("level", ["1", "2", "3", "completed"])
def test_a_level_page_counts_once(bo_client, place, level):
    place(10, number="L1")
    place(16, sent=1, number="L2")
    place(25, sent=2, number="L3")
    place(30, sent=3, number="C")
    bo_client.get(URL)
    with CaptureQueriesContext(connection) as ctx:
        response = bo_client.get(URL, {"dunning_level": level})
    assert response.status_code == 200
    assert len(_counts(ctx.captured_queries)) == 1, "the tab counts are the list's count"
    assert response.context["paginator"].count == 1


def test_the_unfiltered_page_counts_once(bo_client, place):
    place(10, number="L1")
    bo_client.get(URL)
    with CaptureQueriesContext(connection) as ctx:
        bo_client.get(URL)
    # issue 18: the tabs' counts and sums in one query, which also counts the list (it was 2)
    assert len(_counts(ctx.captured_queries)) == 1


@pytest.mark.parametrize(
    "params",
    [{"dunning_level": "2"}, {"dunning_level": "3"}, {"dunning_level": "completed"}, {"sales_account": "x"},
     {"dunning_level": "1", "o": "-total", "flagged": "false"}],
)
def test_queries_per_page_do_not_grow_with_rows(bo_client, place, params):
    def make(prefix: str, n: int) -> None:  # n >= 4: every level gets orders
        for i in range(n):
            overdue, sent = [(10, 0), (16, 1), (25, 2), (30, 3)][i] if i < 4 else (rng.choice([3, 10, 16, 25, 30]),
                                                                                 rng.choice([0, 1, 2, 3]))
            place(overdue, sent=sent, number=f"{prefix}{i}")

    rng = random.Random(1)
    make("F", 8)
    bo_client.get(URL, params)
    with CaptureQueriesContext(connection) as few:
        assert bo_client.get(URL, params).status_code == 200
    make("M", 120)
    with CaptureQueriesContext(connection) as many:
        assert bo_client.get(URL, params).status_code == 200
    # 10 (was 12): whether "Cancel orders" is offered (flagged prepayment orders only) is a column of
    # the page's ids query, and no row is partly paid, so no payments are read (one query more when
    # one is: test_a_page_reads_payments_only_for_partly_paid_rows)
    assert len(few.captured_queries) == len(many.captured_queries) <= 10


def test_a_page_reads_payments_only_for_partly_paid_rows(bo_client, place, now_real):
    """The rows' claims (the "Total due" column) read the payments of the rows with a paid amount
    only, in one query, and none when no row has one; the claims are those of all payments."""
    place(10, number="N0", total=Decimal("50.00"))
    partly = place(10, number="N1", total=Decimal("30.00"))
    bo_client.get(URL)
    with CaptureQueriesContext(connection) as unpaid:
        bo_client.get(URL)
    Payment.objects.create(order=partly, amount=Decimal("10.00"), currency="EUR", booked_on=now_real.date(),
                           source_id="test:1", matched_by=Payment.MatchedBy.MANUAL, matched_at=now_real)
    with CaptureQueriesContext(connection) as paid:
        response = bo_client.get(URL)
    assert len(paid.captured_queries) == len(unpaid.captured_queries) + 1
    orders = response.context["orders"]
    expected = claims_today(orders, on=local_today(now_real), configs=active_configs())
    assert {o.pk: o.claim for o in orders} == expected
    assert expected[partly.pk].total_due < expected[partly.pk].principal


def test_notify_confirmation_queries_do_not_grow_with_orders(bo_client, place, assignments):
    params = {"dunning_level": "1", "select_across": "1"}
    for i in range(3):
        place(10, number=f"F{i}")
    bo_client.get(NOTIFY, params)
    with CaptureQueriesContext(connection) as few:
        assert bo_client.get(NOTIFY, params).status_code == 200
    for i in range(60):
        place(10, number=f"M{i}", customer_email="" if i % 7 == 0 else f"m{i}@example.com")
    with CaptureQueriesContext(connection) as many:
        response = bo_client.get(NOTIFY, params)
    assert response.context["plan"].selected == 63
    # 11 since the confirmation also names the orders it sends to and skips (one query for both lists)
    # next to the preview's claim; what matters is that it does not grow with the orders
    assert len(few.captured_queries) == len(many.captured_queries) <= 11


@pytest.mark.parametrize("sort", ["", "number", "-total", "-days_overdue", "level", "-last_reminder", "customer"])
def test_pages_keep_the_sort_order(bo_client, place, sort):
    rng = random.Random(2)
    for i in range(70):
        place(rng.choice([3, 10, 16, 25, 30]), sent=rng.choice([0, 1, 2, 3]), number=f"N{i:03d}",
              total=Decimal(rng.randrange(100, 900)) / 10, customer_name=rng.choice(["Anna", "Bernd", "Clara"]))
    params = {"o": sort} if sort else {}
    shown = []
    for page in ("1", "2"):
        response = bo_client.get(URL, {**params, "page": page})
        shown += [order.number for order in response.context["orders"]]
        # every row carries what the page shows of it
        for order in response.context["orders"]:
            assert hasattr(order, "current_level") and hasattr(order, "in_flight")
    filterset = response.context["filterset"]
    assert shown == list(filterset.qs.values_list("number", flat=True))
    assert len(shown) == 70


def test_a_capped_level_page(bo_client, place, monkeypatch):
    monkeypatch.setattr(selectors.CappedPaginator, "cap", 3)
    for i in range(5):
        place(10, number=f"N{i}")
    response = bo_client.get(URL, {"dunning_level": "1"})
    html = response.content.decode()
    assert "mehr als 3 Aufträge" in html
    assert len(response.context["orders"]) == 3
    assert response.context["level_tabs"][0]["count"] == 5


def test_paginator_with_rows_reads_ids_then_rows(place, django_assert_num_queries):
    placed = [place(10, number=f"N{i}") for i in range(7)]
    qs = Order.objects.order_by("number")
    paginator = CappedPaginator(qs, 3, known_count=7, rows=lambda ids: Order.objects.filter(pk__in=ids))
    with django_assert_num_queries(2):
        page = paginator.page(3)
    assert [o.number for o in page.object_list] == ["N6"]
    assert page.has_previous() and not page.has_next()
    assert [o.pk for o in paginator.page(1).object_list] == [o.pk for o in placed[:3]]
    empty = CappedPaginator(qs.none(), 3, known_count=0, rows=lambda ids: pytest.fail("no rows to read"))
    with django_assert_num_queries(0):
        assert list(empty.page(1).object_list) == []


def test_level_totals_count_what_level_counts_counts_and_sum_per_currency(db, django_assert_num_queries):
    """issue 18: the page's one aggregate (counts and money per level) agrees with `level_counts`."""
    from backoffice.selectors import level_totals

    now = timezone.now()
    _random_orders(random.Random(7), local_today(now))
    Order.objects.filter(pk__in=Order.objects.order_by("id").values("pk")[:10]).update(currency="GBP")
    configs = active_configs()
    qs = open_orders(now=now, configs=configs)
    with django_assert_num_queries(1):
        totals = level_totals(qs, now=now, configs=configs)
    assert totals.counts == level_counts(qs, now=now, configs=configs)
    assert totals.all_count == qs.count()
    for level in ALL_LEVELS:
        at_level = orders_at_level(level, now=now, configs=configs, queryset=qs)
        expected = [(c, s) for c, s in at_level.order_by("currency").values("currency").annotate(
            s=models.Sum("total")).values_list("currency", "s")]
        assert totals.sums[level] == expected


def test_the_rows_query_compiled_once_takes_each_pages_values(place, now_real, django_assert_num_queries):
    """The rows query (common.compiled.CompiledRows): compiled once with its markers, run with
    each page's ids (padded, or the queryset as usual for more ids than the marker holds) and
    instant; the same rows, relations and annotations as the queryset."""
    orders = [place(10 + i, sent=i % 3, number=f"N{i}") for i in range(7)]
    ReminderFactory(order=orders[1], level=2, status=Reminder.Status.PENDING,
                    created_at=now_real - datetime.timedelta(hours=5))
    ReminderFactory(order=orders[2], level=3, status=Reminder.Status.FAILED, created_at=now_real)
    columns = ("pk", "number", "total", "last_send_failed", "in_flight", "outcome_unknown", "address_bounced",
               "paid_amount", "first_deadline")

    def seen(rows):
        return sorted(tuple(getattr(o, c) for c in columns) for o in rows)

    for stale_before in (now_real - datetime.timedelta(hours=1), now_real - datetime.timedelta(days=1)):
        for ids in ([orders[0].pk], [o.pk for o in orders[:3]], [o.pk for o in orders], [orders[1].pk, 10**9]):
            with django_assert_num_queries(1):
                got = _PAGE_ROWS.instances(ids=ids, stale_before=stale_before)
            assert seen(got) == seen(_page_rows_query(ids, stale_before)), (ids, stale_before)
    assert {o.outcome_unknown for o in _PAGE_ROWS.instances(ids=[orders[1].pk], stale_before=now_real)} == {True}
    # compiled on PostgreSQL; SQLite's datetimes are converted to text at compile time (the marker
    # does not come out unchanged): there the queryset is built per call
    assert (_PAGE_ROWS.sql() is not None) == (connection.vendor == "postgresql")
    too_many = [o.pk for o in orders] + list(range(10**9, 10**9 + 200))
    assert seen(_PAGE_ROWS.instances(ids=too_many, stale_before=now_real)) == seen(
        _page_rows_query(too_many, now_real))
