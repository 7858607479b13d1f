"""The receivables dashboard (/orders/dashboard/), through the page as staff use it: buckets,
levels, flagged amounts, the trend and DSO, and the reminder effect, each against figures computed
by hand here; every figure's link gives the overview exactly those orders; the query count."""

import datetime
import io
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from dunning.models import ReceivablesSnapshot, SnapshotDay
from dunning.selectors import local_midnight
from tests.factories import (
    EmailTemplateFactory,
    OrderFactory,
    ReminderFactory,
    SalesAccountFactory,
)

URL = reverse("backoffice:dashboard")
D = Decimal


def at(day: datetime.date, hour: int = 10) -> datetime.datetime:
    return local_midnight(day) + datetime.timedelta(hours=hour)


@pytest.fixture
def book(place, today, invoice):
    """Orders of the Webshop/invoice config (term 14, levels 7/14/21, 7 days between reminders),
    one of a second account without a config, one in CHF and a paid one."""
    amazon = SalesAccountFactory(name="Amazon")
    flagged_at = at(today - datetime.timedelta(days=1))
    return {
        "A": place(-3, total=D("10.00")),  # due in 3 days: not due
        "B": place(0, total=D("20.00")),  # due today: not due (0 days overdue)
        "C": place(1, total=D("30.00")),  # 1-30, no level yet (level 1 at 7)
        "D": place(30, total=D("40.00")),  # 1-30, level 1
        "E": place(31, sent=1, last_days_ago=10, total=D("50.00")),  # 31-60, level 2
        "F": place(90, sent=3, last_days_ago=10, total=D("60.00")),  # 61-90, completed
        "G": place(91, total=D("70.00"), flagged_for_cancellation_at=flagged_at),  # over 90, level 1, flagged
        "J": place(45, sales_account=amazon, total=D("80.00")),  # 31-60, no config: no level
        "CHF": place(5, total=D("100.00"), currency="CHF"),  # 1-30
        # paid at midnight: a payment later today would lie in the future before 10:00 (the snapshot
        # counts the order open until its payment, the overview paid at once)
        "paid": place(40, total=D("999.00"), paid_at=at(today, 0)),
    }


def _panel(response, currency):
    return next(p for p in response.context["panels"] if p.currency == currency)


def _cells(table):
    return ([(f.cell.count, f.cell.amount) for f in table.buckets],
            [(f.cell.count, f.cell.amount) for f in table.levels])


def test_buckets_levels_and_flagged_by_hand(bo_client, book):
    response = bo_client.get(URL)
    assert response.status_code == 200
    eur = _panel(response, "EUR")
    assert (eur.all.total.cell.count, eur.all.total.cell.amount) == (8, D("360.00"))
    buckets, levels = _cells(eur.all)
    # not due: A + B; 1-30: C + D; 31-60: E + J; 61-90: F; over 90: G
    assert buckets == [(2, D("30.00")), (2, D("70.00")), (2, D("130.00")), (1, D("60.00")), (1, D("70.00"))]
    # level 1: D + G; level 2: E; level 3: none; completed: F (J's account has no config: no level)
    assert levels == [(2, D("110.00")), (1, D("50.00")), (0, D("0")), (1, D("60.00"))]
    assert (eur.all.flagged.cell.count, eur.all.flagged.cell.amount) == (1, D("70.00"))
    # per account, by name: Amazon (J only), Webshop (the rest)
    assert [t.name for t in eur.accounts] == ["Amazon", "Webshop"]
    amazon, webshop = eur.accounts
    assert _cells(amazon)[0] == [(0, 0), (0, 0), (1, D("80.00")), (0, 0), (0, 0)]
    assert (webshop.total.cell.count, webshop.total.cell.amount) == (7, D("280.00"))
    # CHF apart: never added to the euros
    chf = _panel(response, "CHF")
    assert (chf.all.total.cell.count, chf.all.total.cell.amount) == (1, D("100.00"))
    assert _cells(chf.all)[0][1] == (1, D("100.00"))
    # the charts draw the same figures, the longest bar the largest amount
    bars = eur.bucket_chart.bars
    assert [(b.count, b.amount, b.href) for b in bars] == [
        (f.cell.count, f.cell.amount, f.href) for f in eur.all.buckets]
    assert max(bars, key=lambda b: b.width).amount == D("130.00") and max(b.width for b in bars) == 300


def _figures(panel):
    tables = [panel.all, *panel.accounts]
    for table in tables:
        yield table.total
        yield table.flagged
        yield from table.buckets
        yield from table.levels


def test_every_figure_links_to_exactly_its_orders(bo_client, book):
    """Follow each figure's link (tables and chart bars) to the overview: its count and its sum
    are the figure's."""
    response = bo_client.get(URL)
    html = response.content.decode()
    checked = 0
    for panel in response.context["panels"]:
        for figure in _figures(panel):
            assert figure.href.replace("&", "&amp;") in html  # the page shows the link
            overview = bo_client.get(figure.href)
            assert overview.status_code == 200
            assert overview.context["filter_errors"] == []
            assert overview.context["paginator"].count == figure.cell.count, figure
            expected = [(panel.currency, figure.cell.amount)] if figure.cell.count else []
            assert list(overview.context["sums"]) == expected, figure
            checked += 1
        for bar in panel.bucket_chart.bars + panel.level_chart.bars:
            assert f'href="{bar.href.replace("&", "&amp;")}"' in html
    assert checked == (3 + 2) * 11  # EUR: all + 2 accounts, CHF: all + 1 account; 11 figures each


def test_age_filter_on_the_overview_is_the_bucket(bo_client, book):
    response = bo_client.get(reverse("backoffice:open_payments") + "?age=overdue&currency=eur")
    numbers = {o.number for o in response.context["orders"]}
    assert numbers == {book[k].number for k in ("C", "D", "E", "F", "G", "J")}
    chips = {c["name"]: c["value"] for c in response.context["chips"]}
    assert chips["currency"] == "EUR" and chips["age"] == "überfällig (ab 1 Tag)"


def test_bad_overview_filters_are_form_errors(bo_client, book):
    response = bo_client.get(reverse("backoffice:open_payments") + "?age=soon&currency=EURO")
    assert response.status_code == 200
    assert set(response.context["filterset"].form.errors) == {"currency", "age"}
    assert len(response.context["filter_errors"]) == 2


def test_trend_and_dso_from_the_snapshot(bo_client, today, invoice, account, config):
    """Snapshots by hand: p1 open since day -40, p2 ordered day -5, p3 paid on day -10, p4 ordered
    on day -2 and cancelled on day -1."""
    day = lambda n: today - datetime.timedelta(days=n)  # noqa: E731
    p1 = OrderFactory(ordered_at=at(day(40)), total=D("10.00"))
    p2 = OrderFactory(ordered_at=at(day(5)), total=D("20.00"))
    OrderFactory(ordered_at=at(day(40)), total=D("30.00"), paid_at=at(day(10), 15))
    OrderFactory(ordered_at=at(day(2)), total=D("40.00"), cancelled_at=at(day(1)))
    call_command("record_dashboard_snapshot", stdout=io.StringIO())
    assert SnapshotDay.objects.count() == 90

    def row(n):
        return ReceivablesSnapshot.objects.filter(day=day(n)).values_list(
            "open_count", "open_amount", "overdue_count", "overdue_amount", "sales_count", "sales_amount",
            "backfilled").get()

    assert row(0) == (2, D("30.00"), 1, D("10.00"), 0, D("0"), False)  # p1 (26 days overdue), p2
    assert row(11) == (2, D("40.00"), 2, D("40.00"), 0, D("0"), True)  # p1, p3 (paid the day after)
    assert row(5) == (2, D("30.00"), 1, D("10.00"), 1, D("20.00"), True)  # p1, p2 (placed that day)
    assert row(2) == (3, D("70.00"), 1, D("10.00"), 1, D("40.00"), True)  # p4 placed, open that evening
    assert not ReceivablesSnapshot.objects.filter(day=day(41)).exists()  # nothing open or ordered

    response = bo_client.get(URL)
    eur = _panel(response, "EUR")
    # DSO = open now 30.00 x 90 days / ordered in them 100.00
    assert eur.dso == D("27.0")
    points = {p.day: p for p in eur.trend}
    assert points[day(11)].overdue_share == D("100.0")
    assert points[day(0)].overdue_share == D("33.3")  # 10 of 30
    assert points[day(60)].open_amount == 0  # recorded, nothing open: zero, not a gap
    assert len(eur.open_chart.segments) == 1 and not eur.open_chart.dots

    # a second run the same day: today's row follows the orders, recorded days stay as they were
    p2.paid_at = at(today, 0)
    p2.save()
    p1.total = D("11.00")
    p1.save()
    call_command("record_dashboard_snapshot", stdout=io.StringIO())
    assert SnapshotDay.objects.count() == 90
    assert row(0) == (1, D("11.00"), 1, D("11.00"), 0, D("0"), False)
    assert row(5) == (2, D("30.00"), 1, D("10.00"), 1, D("20.00"), True)


def test_trend_gap_without_snapshot(bo_client, today, invoice, account, config):
    OrderFactory(ordered_at=at(today - datetime.timedelta(days=3)), total=D("10.00"))
    call_command("record_dashboard_snapshot", "--days", "1", stdout=io.StringIO())
    eur = _panel(bo_client.get(URL), "EUR")
    assert [p.open_amount for p in eur.trend][-2:] == [None, D("10.00")]
    assert eur.open_chart.segments == [] and len(eur.open_chart.dots) == 1
    assert eur.dso is None  # the one recorded day (today) had no orders placed


def test_dso_without_any_snapshot_says_so_instead_of_a_formula_over_zero_days(bo_client, book):
    html = bo_client.get(URL).content.decode()
    kpi = re.search(r'<div class="kpi" id="kpi-dso-EUR">(.*?)</div>', html, re.S).group(1)
    assert "Für diese Währung gibt es noch keine Erfassung." in kpi and "0 erfassten Tage" not in kpi
    call_command("record_dashboard_snapshot", "--days", "2", stdout=io.StringIO())
    html = bo_client.get(URL).content.decode()
    kpi = re.search(r'<div class="kpi" id="kpi-dso-EUR">(.*?)</div>', html, re.S).group(1)
    assert "der 2 erfassten Tage × 2" in kpi


@pytest.fixture
def reminded(today, invoice, account, config):
    """Reminders by hand (days ago sent -> days to payment):
    o1: L1 (T1a) 20 -> paid 3 days later; o2: L1 (T1a) 20 -> 10 days; o3: L1 (T1a) 20, unpaid;
    o4: L1 (T1a) 20, L2 (T2) 12, paid 7 days after L2 (counts for L2 only);
    o5: L1 (T1b) 20, CHF, paid the next day; o6: L1 (T1b) 3 days ago, unpaid;
    o7: L1 (T1a) 40 days ago: outside the period."""
    t1a = EmailTemplateFactory(name="Erinnerung A", language="de")
    t1b = EmailTemplateFactory(name="Erinnerung B", language="de")
    t2 = EmailTemplateFactory(name="Mahnung", language="de")
    day = lambda n: today - datetime.timedelta(days=n)  # noqa: E731

    def order(paid_days_ago=None, **kwargs):
        paid = at(day(paid_days_ago), 15) if paid_days_ago is not None else None
        return OrderFactory(ordered_at=at(day(60)), paid_at=paid, **kwargs)

    def remind(o, level, template, days_ago):
        ReminderFactory(order=o, level=level, template=template, created_at=at(day(days_ago)),
                        sent_at=at(day(days_ago)))

    remind(order(17, total=D("10.00")), 1, t1a, 20)
    remind(order(10, total=D("20.00")), 1, t1a, 20)
    remind(order(total=D("30.00")), 1, t1a, 20)
    o4 = order(5, total=D("40.00"))
    remind(o4, 1, t1a, 20)
    remind(o4, 2, t2, 12)
    remind(order(19, total=D("50.00"), currency="CHF"), 1, t1b, 20)
    remind(order(total=D("60.00")), 1, t1b, 3)
    remind(order(30, total=D("70.00")), 1, t1a, 40)
    call_command("record_dashboard_snapshot", stdout=io.StringIO())
    return {"T1a": t1a, "T1b": t1b, "T2": t2}


def _effect(e):
    return (e.sent, e.paid_7, e.closed_7, e.share_7, e.paid_14, e.closed_14, e.share_14, e.paid, e.median_days,
            e.recovered_sums)


def test_reminder_effect_by_level_and_template(bo_client, reminded, today):
    start = today - datetime.timedelta(days=30)
    response = bo_client.get(URL, {"start": start.isoformat(), "end": today.isoformat()})
    effect = response.context["effectiveness"]
    level1, level2, level3 = effect.by_level
    # level 1: o1-o6 sent; 5 over their 7 and 14 days (o6 is 3 days old); paid within 7: o1 (3), o5 (1);
    # within 14: o1, o5, o2 (10); o4's payment counts for its level-2 reminder; median of 1, 3, 10
    assert _effect(level1) == (6, 2, 5, D("40.0"), 3, 5, D("60.0"), 3, D("3"),
                               [("CHF", D("50.00")), ("EUR", D("30.00"))])
    # level 2: o4 paid 7 days after; its 14 days are not over (sent 12 days ago): no share yet
    assert _effect(level2) == (1, 1, 1, D("100.0"), 0, 0, None, 1, D("7"), [("EUR", D("40.00"))])
    assert _effect(level3) == (0, 0, 0, None, 0, 0, None, 0, None, [])
    by_template = {e.template_name: e for e in effect.by_template}
    assert list(by_template) == ["Erinnerung A (de)", "Erinnerung B (de)", "Mahnung (de)"]
    # T1a: o1-o4; paid within 7: o1; within 14: o1, o2; median of 3 and 10 = 6.5
    assert _effect(by_template["Erinnerung A (de)"]) == (4, 1, 4, D("25.0"), 2, 4, D("50.0"), 2, D("6.5"),
                                                          [("EUR", D("30.00"))])
    # T1b: o5 paid the next day, o6 too young to count
    assert _effect(by_template["Erinnerung B (de)"]) == (2, 1, 1, D("100.0"), 1, 1, D("100.0"), 1, D("1"),
                                                          [("CHF", D("50.00"))])
    html = response.content.decode()
    assert "40.0 %" in html or "40,0 %" in html


def test_period_includes_older_reminders(bo_client, reminded, today):
    start = today - datetime.timedelta(days=45)
    effect = bo_client.get(URL, {"start": start.isoformat(), "end": today.isoformat()}).context["effectiveness"]
    assert effect.by_level[0].sent == 7 and effect.by_level[0].median_days == D("6.5")  # 1, 3, 10, 30


@pytest.mark.parametrize("params, field", [
    ({"start": "2026-02-30", "end": "2026-03-01"}, "start"),
    ({"start": "2026-03-02", "end": "2026-03-01"}, "end"),
    ({"start": "1999-12-31", "end": "2026-03-01"}, "start"),
    ({"start": "", "end": "2026-03-01"}, "start"),
    ({"end": "yesterday"}, "end"),
])
def test_bad_period_is_a_form_error(bo_client, reminded, params, field):
    response = bo_client.get(URL, params)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert response.context["effectiveness"] is None
    assert 'class="field-error"' in response.content.decode()


def test_query_count_does_not_grow_with_the_data(bo_client, book, reminded, django_assert_num_queries):
    # session, user, group check; configs; payment terms; the aging; the accounts' names; snapshot
    # rows; snapshot days; reminder outcomes; template names
    with django_assert_num_queries(11):
        response = bo_client.get(URL)
    assert response.status_code == 200
    assert len(response.context["panels"]) == 2


def test_login_and_back_office_required(client, outsider_user):
    assert client.get(URL).status_code == 302
    client.force_login(outsider_user)
    assert client.get(URL).status_code == 403


def test_page_has_no_style_attributes_and_a_navigation_link(bo_client, book):
    html = bo_client.get(URL).content.decode()
    assert not re.search(r"\sstyle=", html)  # the CSP (style-src 'self') forbids them
    assert '<svg class="chart bar-chart"' in html and "<title" in html
    assert f'href="{URL}" aria-current="page"' in html


def _follow(bo_client, href, html):
    """The overview behind a link the page shows: its count and its sums per currency."""
    assert href.replace("&", "&amp;") in html  # the page shows the link
    overview = bo_client.get(href)
    assert overview.status_code == 200
    assert overview.context["filter_errors"] == []
    return overview


def test_every_reminder_effect_links_to_exactly_its_orders(bo_client, reminded, today):
    """Each count of the reminder effect (sent, paid after it, paid within 7 and 14 days) and the
    recovered amount link to the overview widened to paid orders: the same count and sum. o8 was
    paid 5 days after its level-1 reminder and got a level-2 reminder after paying: the payment
    counts for level 1 (the last reminder sent before it), not for level 2."""
    day = lambda n: today - datetime.timedelta(days=n)  # noqa: E731
    o8 = OrderFactory(ordered_at=at(day(60)), paid_at=at(day(15), 15), total=D("80.00"))
    ReminderFactory(order=o8, level=1, template=reminded["T1a"], created_at=at(day(20)), sent_at=at(day(20)))
    ReminderFactory(order=o8, level=2, template=reminded["T2"], created_at=at(day(10)), sent_at=at(day(10)))
    call_command("record_dashboard_snapshot", stdout=io.StringIO())
    start = day(30)
    response = bo_client.get(URL, {"start": start.isoformat(), "end": today.isoformat()})
    html = response.content.decode()
    rows = response.context["effect_rows"]
    level1 = rows["by_level"][0].effect
    # by hand: level 1 paid within 7 days: o1 (3), o5 (1), o8 (5); level 2 sent: o4 and o8, paid: o4 only
    assert (level1.sent, level1.paid_7, level1.paid) == (7, 3, 4)
    assert (rows["by_level"][1].effect.sent, rows["by_level"][1].effect.paid) == (2, 1)
    listed = bo_client.get(rows["by_level"][0].paid_7).context["orders"]
    assert {o.total for o in listed} == {D("10.00"), D("50.00"), D("80.00")}
    assert {o.paid_at is not None for o in listed} == {True}
    checked = 0
    for row in rows["by_level"] + rows["by_template"]:
        e = row.effect
        for href, count, sums in ((row.sent, e.sent, e.sent_amounts), (row.paid, e.paid, e.recovered),
                                  (row.paid_7, e.paid_7, e.paid_7_amounts),
                                  (row.paid_14, e.paid_14, e.paid_14_amounts)):
            if not count:
                continue
            overview = _follow(bo_client, href, html)
            assert overview.context["paginator"].count == count, (e, href)
            assert list(overview.context["sums"]) == sorted(sums.items()), (e, href)
            checked += 1
    # level 1, T1a and T1b: sent, paid, within 7, within 14; level 2 and T2: no 14-day window over
    assert checked == 4 + 3 + 4 + 4 + 3
    assert f'href="{rows["by_level"][0].paid.replace("&", "&amp;")}"' in html  # the recovered amount too


def test_todays_trend_row_links_to_the_live_overview(bo_client, book):
    call_command("record_dashboard_snapshot", "--days", "1", stdout=io.StringIO())
    response = bo_client.get(URL)
    html = response.content.decode()
    for panel in response.context["panels"]:
        today_point = panel.trend[-1]
        overview = _follow(bo_client, panel.today_open, html)
        assert overview.context["paginator"].count == today_point.open_count
        assert list(overview.context["sums"]) == [(panel.currency, today_point.open_amount)]
        overdue = _follow(bo_client, panel.today_overdue, html)
        assert overdue.context["paginator"].count == today_point.overdue_count
        expected = [(panel.currency, today_point.overdue_amount)] if today_point.overdue_count else []
        assert list(overdue.context["sums"]) == expected
    # the past days are not linked
    assert html.count(response.context["panels"][0].today_open.replace("&", "&amp;")) >= 2


def test_widened_overview_keeps_actions_to_open_orders(bo_client, reminded, today):
    """The reminder filters list paid orders too; "block" over the whole list changes only the
    open ones (the action's rule), and the default overview still lists open orders only."""
    from orders.models import Order

    query = {"state": "all", "reminded_level": "1", "reminded_from": (today - datetime.timedelta(days=30)).isoformat(),
             "reminded_to": today.isoformat()}
    overview = bo_client.get(reverse("backoffice:open_payments"), query)
    assert overview.context["paginator"].count == 6  # o1-o6
    chips = {c["name"]: c["value"] for c in overview.context["chips"]}
    assert chips["state"] == "Alle (offen, bezahlt, storniert)" and chips["reminded_level"] == "Mahnstufe 1"
    assert "bezahlt " in overview.content.decode()  # the paid rows say so
    export = bo_client.get(reverse("backoffice:export_orders"), {"format": "csv", **query})
    assert export.status_code == 200
    assert len(b"".join(export.streaming_content if export.streaming else [export.content])
               .decode("utf-8-sig").strip().splitlines()) == 1 + 6  # the header and o1-o6
    actions = reverse("backoffice:bulk_action")
    bo_client.post(actions, {"action": "block", "select_across": "1", "reason": "Test", **query})
    blocked = set(Order.objects.filter(dunning_blocked=True).values_list("total", flat=True))
    assert blocked == {D("30.00"), D("60.00")}  # o3 and o6: the open ones
    assert bo_client.get(reverse("backoffice:open_payments")).context["paginator"].count == 2


def test_bad_reminder_filters_are_form_errors(bo_client, reminded):
    response = bo_client.get(reverse("backoffice:open_payments"),
                             {"state": "gone", "reminded_level": "4", "template": "x", "reminded_from": "2026-02-30",
                              "paid_within": "3"})
    assert response.status_code == 200
    assert set(response.context["filterset"].form.errors) == {"state", "reminded_level", "template",
                                                              "reminded_from", "paid_within"}
    assert response.context["paginator"].count == 2  # the open orders, unfiltered
