"""The one FilterSet of the open-payments overview: every filter and sort order of the page is
here, as a query parameter, so a filtered view can be bookmarked. The dunning-level filter asks
dunning.selectors.level_q: the level rule is not repeated here."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterable

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.db.models import Case, DateTimeField, F, Q, QuerySet, Value, When
from django.forms.models import ModelChoiceIterator
from django.http import QueryDict
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django_filters.constants import EMPTY_VALUES

from accounts.models import SalesAccount
from common.dates import local_today
from dunning.models import DunningConfig, DunningLevel
from dunning.reporting import PAID_WITHIN, AgeBucket, age_bucket_q, reminded_orders_q
from dunning.selectors import level_annotation, level_q
from orders.models import OPEN, Order, PaymentMethod, payment_terms

# (query value, label) of the level filter: `?dunning_level=1`, ..., `?dunning_level=completed`
LEVEL_FILTER_CHOICES = [(level.param, level.label) for level in DunningLevel]
YES_NO = [("true", _("Yes")), ("false", _("No"))]
# The orders the list holds (`?state=`): open by default; the dashboard's reminder-effect links
# widen it to orders paid or cancelled since. The level tabs count open orders only, and every
# action's rule (orders.services.RULES, the notify plan's level) still skips closed ones.
STATE_OPEN = "open"
STATE_CHOICES = [("paid", _("Paid")), ("cancelled", _("Cancelled")), ("all", _("All (open, paid, cancelled)"))]
_STATE_Q = {STATE_OPEN: OPEN, "paid": Q(paid_at__isnull=False), "cancelled": Q(cancelled_at__isnull=False),
            "all": Q()}
PAID_WITHIN_CHOICES = [("any", _("paid after it"))] + [
    (str(n), _("paid within %(days)d days") % {"days": n}) for n in PAID_WITHIN]
REMINDER_LEVEL_CHOICES = [(str(level.value), level.label) for level in DunningLevel.sendable()]
# the filters that select by one reminder together (`reminded_orders_q`: the same reminder)
REMINDER_FILTERS = ("reminded_level", "template", "reminded_from", "reminded_to", "paid_within")


def overview_orders(*, now: datetime.datetime, configs: Iterable[DunningConfig],
                    state: str = STATE_OPEN, with_level: bool = True) -> QuerySet[Order]:
    """The orders of the overview in `state` (open, paid, cancelled, all) with what the list shows
    of their account and payment method and their current level (NULL when in none; always for a
    closed order: the level rule states "open"). `with_level` False: without the level (the
    overview's page computes it for its rows only unless it sorts by it: the CASE of four levels
    costs milliseconds to build and compile)."""
    qs = Order.objects.filter(_STATE_Q[state]).select_related("sales_account", "payment_method")
    return qs.annotate(current_level=level_annotation(now=now, configs=configs)) if with_level else qs


# A selection carried back to the overview (after "Apply" without an action): ticked again there,
# never part of its filter or of the links it builds.
SELECTION_PARAMS = ("ids", "select_across", "missing_action")


# The last instant a due date can be: order dates after `_LATEST_DUE - term` (stored before they
# were bounded) would overflow Python's datetime (SQLite computes in Python) or be unreadable
# from PostgreSQL, so they sort as this instant instead.
_LATEST_DUE = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)


def due_at_expression() -> Case:
    """Order date plus the payment term, for sorting by days overdue (portable: the few payment
    terms become a CASE of timestamp + constant interval, clamped at the end of the calendar)."""
    terms = sorted(set(PaymentMethod.objects.values_list("payment_term_days", flat=True)))
    whens = []
    for t in terms:
        if t:
            term = datetime.timedelta(days=t)
            whens += [
                When(payment_method__payment_term_days=t, ordered_at__gte=_LATEST_DUE - term, then=Value(_LATEST_DUE)),
                When(payment_method__payment_term_days=t, then=F("ordered_at") + term),
            ]
    return Case(*whens, default=F("ordered_at"), output_field=DateTimeField())


def search_q(value: str) -> Q:
    """The overview's search: a part of the order number, the customer's name or e-mail."""
    return Q(number__icontains=value) | Q(customer_name__icontains=value) | Q(customer_email__icontains=value)


class _FetchedChoiceIterator(ModelChoiceIterator):
    """The choices in one plain query. Django's iterator streams them through `.iterator()`, which
    on PostgreSQL is a server-side cursor: DECLARE, FETCH and CLOSE, three round trips per select
    box instead of one."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


class _FetchedModelChoiceField(django_filters.fields.ModelChoiceField):
    iterator = _FetchedChoiceIterator


class FetchedModelChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = _FetchedModelChoiceField


class OverviewOrdering(django_filters.OrderingFilter):
    """Column sorting (`?o=number`, `?o=-total`) with a stable tie-breaker, empty values last,
    "days overdue" sorted by the due date and amounts by currency first (never mixed)."""

    NULLABLE = {"last_reminder_at", "current_level"}

    def filter(self, qs: QuerySet, value):
        if value in EMPTY_VALUES:
            return qs
        ordering = []
        for param in value:
            if param in EMPTY_VALUES:
                continue
            descending = param.startswith("-")
            name = param.removeprefix("-")
            field = self.param_map.get(name, name)
            if field == "due_at":
                qs = qs.annotate(due_at=due_at_expression())
                descending = not descending  # more days overdue = earlier due date
            if field == "total":
                # amounts of different currencies are not comparable: by currency first, then amount
                ordering.append(F("currency").asc())
            nulls_last = True if field in self.NULLABLE else None
            expr = F(field).desc(nulls_last=nulls_last) if descending else F(field).asc(nulls_last=nulls_last)
            ordering.append(expr)
        return qs.order_by(*ordering, "-id")


SORT_FIELDS = (
    ("number", "number"),
    ("ordered_at", "ordered_at"),
    ("customer_name", "customer"),
    ("customer_email", "email"),
    ("total", "total"),
    ("payment_method__name", "payment_method"),
    ("sales_account__name", "sales_account"),
    ("due_at", "days_overdue"),
    ("reminders_sent", "reminders_sent"),
    ("last_reminder_at", "last_reminder"),
    ("current_level", "level"),
)


class OpenOrderFilter(django_filters.FilterSet):
    dunning_level = django_filters.ChoiceFilter(
        label=_("Dunning level"), choices=LEVEL_FILTER_CHOICES, method="filter_dunning_level", empty_label=_("All open")
    )
    sales_account = FetchedModelChoiceFilter(
        label=_("Sales account"), queryset=SalesAccount.objects.all(), empty_label=_("All")
    )
    payment_method = FetchedModelChoiceFilter(
        label=_("Payment method"), queryset=PaymentMethod.objects.all(), empty_label=_("All")
    )
    blocked = django_filters.ChoiceFilter(
        label=_("Dunning blocked"), choices=YES_NO, method="filter_blocked", empty_label=_("All")
    )
    flagged = django_filters.ChoiceFilter(
        label=_("Flagged for cancellation"), choices=YES_NO, method="filter_flagged", empty_label=_("All")
    )
    currency = django_filters.CharFilter(
        label=_("Currency"), method="filter_currency", max_length=3,
        validators=[RegexValidator(r"^[A-Za-z]{3}$", _("Enter a three-letter currency code."))],
    )
    age = django_filters.ChoiceFilter(
        label=_("Days overdue"), choices=AgeBucket.choices, method="filter_age", empty_label=_("All")
    )
    q = django_filters.CharFilter(
        label=_("Search"),
        method="filter_search",
        max_length=100,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Number, customer, e-mail")}),
    )
    # set by the dashboard's links; shown and removed as chips
    state = django_filters.ChoiceFilter(
        label=_("Orders"), choices=STATE_CHOICES, method="filter_noop", empty_label=_("Open")
    )
    reminded_level = django_filters.ChoiceFilter(
        label=_("Reminder"), choices=REMINDER_LEVEL_CHOICES, method="filter_noop", empty_label=_("All")
    )
    template = django_filters.CharFilter(
        label=_("Template"), method="filter_noop", max_length=20,
        validators=[RegexValidator(r"^([0-9]{1,12}|none)$", _("Enter a template number or “none”."))],
    )
    reminded_from = django_filters.DateFilter(label=_("Reminder sent from"), method="filter_noop")
    reminded_to = django_filters.DateFilter(label=_("Reminder sent until"), method="filter_noop")
    paid_within = django_filters.ChoiceFilter(
        label=_("Payment after the reminder"), choices=PAID_WITHIN_CHOICES, method="filter_noop",
        empty_label=_("All"),
    )
    o = OverviewOrdering(fields=SORT_FIELDS, label=_("Sort by"))

    class Meta:
        model = Order
        fields: list[str] = []

    def __init__(
        self, data=None, queryset=None, *, now: datetime.datetime, configs: Iterable[DunningConfig],
        with_level: bool = True, request=None, prefix=None
    ) -> None:
        # django-filter's FilterSet.__init__ without its `copy.deepcopy(self.base_filters)`: each
        # filter is copied shallowly instead (its own `parent`; the method filters re-bound to the
        # copy), which is all a request changes of a filter. The deep copy of the 16 filters (their
        # choices, widgets and lazy labels) was about a tenth of the overview's Python time
        # (docs/performance-notes.md). The form class is built once (`get_form_class`).
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = Order.objects.all() if queryset is None else queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {name: self._copy_filter(f) for name, f in self.base_filters.items()}
        self.now = now
        self.configs = list(configs)
        if self.list_state != STATE_OPEN:
            # the caller's queryset is the open orders (`overview_orders`): the same, in another state
            self.queryset = overview_orders(now=now, configs=self.configs, state=self.list_state,
                                            with_level=with_level)

    def _copy_filter(self, base: django_filters.Filter) -> django_filters.Filter:
        f = copy.copy(base)
        f.extra = dict(base.extra)
        if base.method is not None:
            f.method = base.method  # a FilterMethod of the copy, which finds the method on this parent
        f.model = self.queryset.model
        f.parent = self
        return f

    @classmethod
    def get_form_class(cls) -> type[forms.Form]:
        """The form of the filters, built once per class from the declared filters' fields (which
        depend on nothing of a request; django-filter builds the class on every request). Each
        form still deep-copies its fields (Django's Form.__init__)."""
        form_class = cls.__dict__.get("_form_class")
        if form_class is None:
            fields = {name: f.field for name, f in cls.base_filters.items()}
            form_class = type(f"{cls.__name__}Form", (cls._meta.form,), fields)
            cls._form_class = form_class
        return form_class

    @staticmethod
    def sorts_by_level(data: QueryDict) -> bool:
        """Whether `?o=` sorts by the level (the queryset then needs `current_level`)."""
        return any(part.strip().lstrip("-") == "level" for value in data.getlist("o") for part in value.split(","))

    # --- filters ---

    FILTER_NAMES = ("dunning_level", "sales_account", "payment_method", "blocked", "flagged", "currency", "age", "q",
                    "state", *REMINDER_FILTERS)

    @property
    def list_state(self) -> str:
        """The valid `?state=`, else open."""
        if not self.is_bound:
            return STATE_OPEN
        self.errors  # noqa: B018 - validates the form
        return self.form.cleaned_data.get("state") or STATE_OPEN

    def filter_noop(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        """The state selects the queryset (`__init__`); the reminder filters act together
        (`filter_reminder`)."""
        return queryset

    def filter_reminder(self, queryset: QuerySet[Order]) -> QuerySet[Order]:
        """The orders with one reminder that meets every reminder filter given
        (`dunning.reporting.reminded_orders_q`, the rule of the dashboard's reminder effect)."""
        data = self.form.cleaned_data
        if not any(data.get(name) not in EMPTY_VALUES for name in REMINDER_FILTERS):
            return queryset
        template = data.get("template") or None
        level = data.get("reminded_level")
        return queryset.filter(reminded_orders_q(
            now=self.now, level=int(level) if level else None,
            template_id=int(template) if template and template != "none" else None,
            without_template=template == "none", start=data.get("reminded_from"), end=data.get("reminded_to"),
            paid_within=data.get("paid_within") or None))

    def filter_queryset(self, queryset: QuerySet[Order]) -> QuerySet[Order]:
        return self.filter_reminder(super().filter_queryset(queryset))

    def filter_dunning_level(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        level = DunningLevel.from_param(value)
        if level is None:
            return queryset
        return queryset.filter(level_q(level, now=self.now, configs=self.configs))

    def filter_blocked(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        return queryset.filter(dunning_blocked=value == "true")

    def filter_flagged(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        return queryset.filter(flagged_for_cancellation_at__isnull=value != "true")

    def filter_currency(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        return queryset.filter(currency=value.upper())

    def filter_age(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        """Days overdue in the bucket (the dashboard's age buckets; dunning.reporting.AgeBucket)."""
        return queryset.filter(age_bucket_q(value, today=local_today(self.now), terms=payment_terms()))

    def filter_search(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(search_q(value))

    # --- helpers for the page ---

    @property
    def level(self) -> DunningLevel | None:
        """The valid dunning level filter, or None."""
        if not self.is_bound:
            return None
        self.errors  # noqa: B018 - validates the form
        return DunningLevel.from_param(self.form.cleaned_data.get("dunning_level"))

    def totals_where(self) -> dict | None:
        """The valid filters but the level as values of the columns of the open orders' totals
        (orders.open_totals; `backoffice.selectors.level_totals`), or None when one of them is not
        such a column (a search, days overdue, flagged, a reminder filter, closed orders)."""
        where: dict = {}
        if not self.is_bound:
            return where
        self.errors  # noqa: B018 - validates the form
        for name, value in self.form.cleaned_data.items():
            if name in ("dunning_level", "o") or value in EMPTY_VALUES:
                continue
            if name == "sales_account":
                where["sales_account_id"] = value.pk
            elif name == "payment_method":
                where["payment_method_id"] = value.pk
            elif name == "blocked":
                where["dunning_blocked"] = value == "true"
            elif name == "currency":
                where["currency"] = value.upper()
            elif name == "q" and not value.strip():
                continue
            else:
                return None
        return where

    def qs_without(self, *names: str) -> QuerySet[Order]:
        """The queryset filtered by every valid filter except `names` (and unsorted)."""
        qs = self.queryset.all()
        if not self.is_bound:
            return qs
        self.errors  # noqa: B018 - validates the form
        for name, value in self.form.cleaned_data.items():
            if name in names or name == "o":
                continue
            qs = self.filters[name].filter(qs, value)
        return self.filter_reminder(qs)

    # --- the filters in query strings (links back to the list, forms that carry the selection) ---

    @classmethod
    def params(cls, data: QueryDict) -> list[tuple[str, str]]:
        """The non-empty filter parameters of `data` (no sort, no page), in a fixed order."""
        return [(name, value) for name in cls.FILTER_NAMES for value in data.getlist(name) if value]

    @classmethod
    def query(cls, data: QueryDict) -> str:
        """`?<the filter parameters>`, or "" when there are none."""
        params = QueryDict(mutable=True)
        for name, value in cls.params(data):
            params.appendlist(name, value)
        return f"?{params.urlencode()}" if params else ""

    @classmethod
    def list_url(cls, data: QueryDict) -> str:
        """The overview filtered as in `data`."""
        return reverse("backoffice:open_payments") + cls.query(data)

    @staticmethod
    def query_without(data: QueryDict, *names: str) -> str:
        """The whole query string (sort included) without `names` and the page: a changed filter
        starts on page 1."""
        params = data.copy()
        for name in (*names, "page"):
            params.pop(name, None)
        encoded = params.urlencode()
        return f"?{encoded}" if encoded else "?"
