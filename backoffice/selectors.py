"""Reads behind the back-office pages: the overview rows with their badges, the capped count,
the level counts and what a Notify would do. Levels always come from dunning.selectors."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils.functional import cached_property

from dunning import selectors as dunning_selectors
from dunning.models import DunningConfig, EmailTemplate, Reminder, ReminderAssignment
from dunning.selectors import ALL_LEVELS, level_annotation, level_q
from dunning.services import TemplateResolver
from dunning.templating import CompiledTemplate, RenderedEmail, order_context
from orders.models import OPEN, Order

COUNT_CAP = 10_000


def stale_after() -> datetime.timedelta:
    """A reminder pending (in flight) longer than this has an unknown outcome."""
    return datetime.timedelta(minutes=getattr(settings, "DUNNING_STALE_PENDING_MINUTES", 15))


def open_orders(*, now: datetime.datetime, configs: Iterable[DunningConfig]) -> QuerySet[Order]:
    """All open orders with what the overview shows of their account and payment method and
    their current level (NULL when in none)."""
    return (
        Order.objects.filter(OPEN)
        .select_related("sales_account", "payment_method")
        .annotate(current_level=level_annotation(now=now, configs=configs))
    )


def with_badges(qs: QuerySet[Order], *, now: datetime.datetime) -> QuerySet[Order]:
    """Badge flags as EXISTS subqueries, evaluated only for the rows of the page."""
    reminders = Reminder.objects.filter(order=OuterRef("pk"))
    pending = reminders.filter(status=Reminder.Status.PENDING)
    return qs.annotate(
        # the next level's reminder failed and none of that level went out since
        last_send_failed=Exists(reminders.filter(status=Reminder.Status.FAILED, level=OuterRef("reminders_sent") + 1)),
        in_flight=Exists(pending),
        outcome_unknown=Exists(pending.filter(created_at__lt=now - stale_after())),
        address_bounced=bounced_exists(),
    )


def bounced_exists() -> Exists:
    """An earlier reminder to the order's current address bounced or was marked as spam (the
    engine skips such orders until the address is corrected)."""
    return Exists(
        Reminder.objects.filter(
            order=OuterRef("pk"),
            recipient=OuterRef("customer_email"),
            status__in=[Reminder.Status.BOUNCED, Reminder.Status.COMPLAINED],
        )
    )


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP rows (SELECT COUNT(*) FROM (... LIMIT cap+1)) instead of a full
    COUNT(*) over a million orders; `is_capped` tells the page to say "more than"."""

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        n = self.object_list.order_by().values("pk")[: self.cap + 1].count()
        self.is_capped = n > self.cap
        return min(n, self.cap)

    is_capped = False


def level_counts(qs: QuerySet[Order], *, now: datetime.datetime, configs: list[DunningConfig]) -> dict[Any, int]:
    """How many orders of `qs` are at each level, in one query."""
    active = [c for c in configs if c.is_active]
    if not active:
        return dict.fromkeys(ALL_LEVELS, 0)
    aggregates = {f"l_{level}": Count("pk", filter=level_q(level, now=now, configs=active)) for level in ALL_LEVELS}
    row = qs.order_by().aggregate(**aggregates)
    return {level: row[f"l_{level}"] or 0 for level in ALL_LEVELS}


# --- what a Notify would do ---------------------------------------------------------------------


@dataclass
class TemplateGroup:
    account_name: str
    language: str
    template: EmailTemplate | None
    count: int


@dataclass
class NotifyPlan:
    level: int
    selected: int
    not_at_level: int
    in_flight: int
    no_email: int
    bounced: int
    no_template: int
    will_send: int
    groups: list[TemplateGroup] = field(default_factory=list)
    preview_order: Order | None = None
    preview: RenderedEmail | None = None
    preview_template: EmailTemplate | None = None
    preview_error: str = ""

    @property
    def skipped(self) -> int:
        return self.not_at_level + self.in_flight + self.no_email + self.bounced + self.no_template


def notify_plan(
    selection: QuerySet[Order], *, level: int, now: datetime.datetime, configs: list[DunningConfig]
) -> NotifyPlan:
    """Counts (each one query, whatever the size of the selection), the template per account and
    language, and a rendered preview of one reminder that would go out."""
    selection = selection.order_by()
    selected = selection.count()
    at_level = dunning_selectors.orders_at_level(level, now=now, configs=configs, queryset=selection)
    due = dunning_selectors.orders_due(level, now=now, configs=configs, automatic=False, queryset=selection)
    assigned = ReminderAssignment.objects.filter(level=level).values("sales_account_id")
    # the order of the engine's checks: no address, address bounced, no template
    due = due.annotate(address_bounced=bounced_exists())
    has_email = ~Q(customer_email="")
    counts = due.aggregate(
        due=Count("pk"),
        no_email=Count("pk", filter=Q(customer_email="")),
        bounced=Count("pk", filter=has_email & Q(address_bounced=True)),
        no_template=Count("pk", filter=has_email & Q(address_bounced=False) & ~Q(sales_account_id__in=assigned)),
    )
    n_at_level = at_level.count()
    plan = NotifyPlan(
        level=level,
        selected=selected,
        not_at_level=selected - n_at_level,
        in_flight=n_at_level - counts["due"],
        no_email=counts["no_email"],
        bounced=counts["bounced"],
        no_template=counts["no_template"],
        will_send=counts["due"] - counts["no_email"] - counts["bounced"] - counts["no_template"],
    )
    resolver = TemplateResolver(level)
    sendable = due.exclude(customer_email="").filter(address_bounced=False)
    rows = (
        sendable.values("sales_account_id", "sales_account__name", "sales_account__language", "language")
        .annotate(n=Count("pk"))
        .order_by("sales_account__name", "language")
    )
    merged: dict[tuple[int, str], TemplateGroup] = {}
    for row in rows:
        language = row["language"] or row["sales_account__language"]
        key = (row["sales_account_id"], language)
        if key in merged:
            merged[key].count += row["n"]
            continue
        merged[key] = TemplateGroup(
            account_name=row["sales_account__name"],
            language=language,
            template=resolver.template_for(row["sales_account_id"], language),
            count=row["n"],
        )
    plan.groups = list(merged.values())
    preview_order = (
        sendable.filter(sales_account_id__in=assigned)
        .select_related("sales_account", "payment_method")
        .order_by("id")
        .first()
    )
    if preview_order is not None:
        plan.preview_order = preview_order
        template = resolver.template_for(preview_order.sales_account_id, preview_order.effective_language)
        plan.preview_template = template
        try:
            plan.preview = CompiledTemplate(template).render(
                order_context(
                    preview_order,
                    level=level,
                    today=dunning_selectors.local_today(now),
                    language=preview_order.effective_language,
                )
            )
        except Exception as exc:  # a broken template: show the problem instead of a preview
            plan.preview_error = f"{type(exc).__name__}: {exc}"
    return plan


def level_of(order: Order, *, now: datetime.datetime, configs: list[DunningConfig]) -> int | None:
    """The current level of one order (1, 2, 3, 4 = completed, None)."""
    return (
        Order.objects.filter(pk=order.pk)
        .annotate(current_level=level_annotation(now=now, configs=configs))
        .values_list("current_level", flat=True)
        .first()
    )


def run_progress(run_id: int) -> dict[str, int]:
    """Reminders written by a run so far, by status, in one query."""
    rows = Reminder.objects.filter(run_id=run_id).values("status").annotate(n=Count("pk")).order_by()
    return {row["status"]: row["n"] for row in rows}
