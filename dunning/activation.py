"""Activation safety (docs/rules/sending.md): before a change that makes the job act on more orders (a config
activated, level days or `cancel_after_days` lowered, `only_orders_since` cleared or moved earlier,
automatic sending switched on), staff see how many orders the next run would remind at once, per
level, and how many prepayment orders it would flag or cancel, computed for the configuration as it
WOULD be (an unsaved instance) with the very selectors the job uses."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.urls import reverse
from django.utils.translation import gettext as _

from orders.models import Order

from . import selectors
from .models import LEVELS, DunningConfig, ReminderAssignment


def overview_url(**params) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return reverse("backoffice:open_payments") + (f"?{query}" if query else "")


@dataclass(frozen=True)
class LevelPreview:
    level: int
    count: int  # due now under the config as it would be
    current: int | None  # due now under the saved config (None: not active now)
    automatic: bool  # the account's assignment sends this level automatically
    url: str


@dataclass(frozen=True)
class ActivationPreview:
    config: DunningConfig
    levels: list[LevelPreview]
    cancellation_count: int
    cancellation_current: int | None
    cancellation_action: str
    cancellation_url: str
    orders_url: str
    reasons: list[str] = field(default_factory=list)

    @property
    def reminders_at_once(self) -> int:
        """Reminders the next automatic run would send (levels sent automatically only)."""
        return sum(lp.count for lp in self.levels if lp.automatic)

    @property
    def reminders_due(self) -> int:
        return sum(lp.count for lp in self.levels)


@dataclass(frozen=True)
class TeamNoticePreview:
    """The notice the first run would send a sales account's team (dunning.services.cancellation):
    one per account whose prepayment orders it flags or cancels, to the account's team address."""

    account: str
    team_email: str  # "" : no address set, so no notice (the run reports that as an error)
    flagged: int
    cancelled: int
    url: str

    @property
    def orders(self) -> int:
        return self.flagged + self.cancelled


def team_notices_preview(previews: list[ActivationPreview]) -> list[TeamNoticePreview]:
    """The team notices of `previews` (all active configs), one per sales account, by account name."""
    by_account: dict[int, list[ActivationPreview]] = {}
    for p in previews:
        if p.cancellation_count:
            by_account.setdefault(p.config.sales_account_id, []).append(p)
    notices = []
    for account_id, items in by_account.items():
        account = items[0].config.sales_account
        flagged = sum(p.cancellation_count for p in items
                      if p.config.cancellation_action == DunningConfig.CancellationAction.FLAG)
        notices.append(TeamNoticePreview(account=account.name, team_email=account.team_email, flagged=flagged,
                                         cancelled=sum(p.cancellation_count for p in items) - flagged,
                                         url=overview_url(sales_account=account_id)))
    return sorted(notices, key=lambda n: n.account)


def _count_due(level: int, config: DunningConfig, now: datetime.datetime) -> int:
    return selectors.orders_due(level, now=now, configs=[config], automatic=True).count()


def _count_cancellation(config: DunningConfig, now: datetime.datetime) -> int:
    q = selectors.cancellation_q(now=now, configs=[config])
    if q is selectors.NOTHING:
        return 0
    return Order.objects.filter(q).count()


def activation_preview(config: DunningConfig, *, now: datetime.datetime, current: DunningConfig | None = None,
                       reasons: list[str] | None = None) -> ActivationPreview:
    """What the job would do at `now` for `config` (saved or not, taken as active), per level and
    for the prepayment cancellation; with `current` (the saved config, if active) for comparison."""
    would_be = _as_active(config)
    if current is not None and not current.is_active:
        current = None
    automatic = set(ReminderAssignment.objects.filter(sales_account_id=config.sales_account_id,
                                                      send_automatically=True).values_list("level", flat=True))
    common = {"sales_account": config.sales_account_id, "payment_method": config.payment_method_id}
    levels = [
        LevelPreview(level=level, count=_count_due(level, would_be, now),
                     current=_count_due(level, current, now) if current is not None else None,
                     automatic=level in automatic, url=overview_url(dunning_level=level, **common))
        for level in LEVELS
    ]
    return ActivationPreview(
        config=config,
        levels=levels,
        cancellation_count=_count_cancellation(would_be, now),
        cancellation_current=_count_cancellation(current, now) if current is not None else None,
        cancellation_action=would_be.get_cancellation_action_display(),
        cancellation_url=overview_url(**common),
        orders_url=overview_url(**common),
        reasons=reasons or [],
    )


def _as_active(config: DunningConfig) -> DunningConfig:
    if config.is_active:
        return config
    copy = DunningConfig(**{f.attname: getattr(config, f.attname) for f in DunningConfig._meta.concrete_fields})
    copy.is_active = True
    # keep the related objects already loaded (payment term, prepayment flag)
    copy.payment_method = config.payment_method
    copy.sales_account = config.sales_account
    return copy


def _lowered(old: int | None, new: int | None) -> bool:
    """None means "never" (no cancellation): setting a value lowers it."""
    if new is None:
        return False
    return old is None or new < old


def config_widening_reasons(old: DunningConfig | None, new: DunningConfig) -> list[str]:
    """Why saving `new` (over the saved `old`, None when added) may make the job act on orders it
    would not have acted on: empty when no confirmation is needed. Only an active result matters."""
    if not new.is_active:
        return []
    if old is None or not old.is_active:
        return [_("The configuration is activated.")]
    reasons = []
    if (old.sales_account_id, old.payment_method_id) != (new.sales_account_id, new.payment_method_id):
        reasons.append(_("The sales account or payment method changes."))
    for level in LEVELS:
        if new.level_days(level) < old.level_days(level):
            reasons.append(_("Level %(level)s starts earlier: %(old)s → %(new)s days overdue.")
                           % {"level": level, "old": old.level_days(level), "new": new.level_days(level)})
    if new.min_days_between_reminders < old.min_days_between_reminders:
        reasons.append(_("The minimum gap between reminders is shortened: %(old)s → %(new)s days.")
                       % {"old": old.min_days_between_reminders, "new": new.min_days_between_reminders})
    if new.minimum_amount < old.minimum_amount:
        reasons.append(_("The minimum amount is lowered: %(old)s → %(new)s.")
                       % {"old": old.minimum_amount, "new": new.minimum_amount})
    if old.only_orders_since is not None and (new.only_orders_since is None
                                              or new.only_orders_since < old.only_orders_since):
        reasons.append(_("“Only orders since” is cleared or moved earlier: %(old)s → %(new)s.")
                       % {"old": old.only_orders_since, "new": new.only_orders_since or "—"})
    if _lowered(old.cancel_after_days, new.cancel_after_days):
        reasons.append(_("Prepayment orders are handled earlier: %(old)s → %(new)s days.")
                       % {"old": old.cancel_after_days if old.cancel_after_days is not None else "—",
                          "new": new.cancel_after_days})
    flag = DunningConfig.CancellationAction.FLAG
    if (new.cancel_after_days is not None and old.cancellation_action == flag
            and new.cancellation_action != flag):
        reasons.append(_("Flagged prepayment orders will now be cancelled."))
    return reasons


def assignment_widening_reasons(old: ReminderAssignment | None, new: ReminderAssignment) -> list[str]:
    """Switching a level to automatic sending (or moving an automatic assignment) needs the same
    confirmation: the next run reminds every order due at that level."""
    if not new.send_automatically:
        return []
    if old is None or not old.send_automatically:
        return [_("Level %(level)s is switched to automatic sending.") % {"level": new.level}]
    if (old.sales_account_id, old.level) != (new.sales_account_id, new.level):
        return [_("The automatic assignment moves to another sales account or level.")]
    return []


@dataclass(frozen=True)
class AssignmentPreview:
    assignment: ReminderAssignment
    rows: list[tuple[DunningConfig, int, str]]  # (active config of the account, due at the level, overview link)
    reasons: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(count for _config, count, _url in self.rows)


def assignment_preview(assignment: ReminderAssignment, *, now: datetime.datetime,
                       reasons: list[str] | None = None) -> AssignmentPreview:
    """How many orders the next run would remind at the assignment's level, per active config of
    its sales account."""
    rows = []
    for config in selectors.active_configs(sales_account_id=assignment.sales_account_id):
        count = _count_due(assignment.level, config, now)
        rows.append((config, count, overview_url(dunning_level=assignment.level,
                                                 sales_account=config.sales_account_id,
                                                 payment_method=config.payment_method_id)))
    return AssignmentPreview(assignment=assignment, rows=rows, reasons=reasons or [])
