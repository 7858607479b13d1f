"""Prepayment cancellation (docs/rules/cancellation.md): open prepayment orders of active configs
whose age in days reached `cancel_after_days` are flagged, cancelled, or cancelled with their stock
reservation released, and each sales account's team gets one notice listing the orders newly
handled in this run."""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext_noop

from accounts.models import SalesAccount
from common.i18n import stored_text
from common.iterables import chunked
from orders.audit import order_events_log
from orders.models import Order, OrderEvent, touched
from webhooks.models import EventType
from webhooks.services import events_emit

from .. import selectors
from ..models import DunningConfig
from .providers import error_text

logger = logging.getLogger(__name__)

Action = DunningConfig.CancellationAction
AUDIT_ACTION = {
    Action.FLAG: OrderEvent.Action.AUTO_FLAG,
    Action.CANCEL: OrderEvent.Action.AUTO_CANCEL,
    Action.CANCEL_AND_RELEASE: OrderEvent.Action.AUTO_CANCEL_AND_RELEASE,
}

# The webhook event of each action, and its data besides the order number.
EVENT_TYPE = {
    Action.FLAG: EventType.ORDER_FLAGGED_FOR_CANCELLATION,
    Action.CANCEL: EventType.ORDER_CANCELLED,
    Action.CANCEL_AND_RELEASE: EventType.ORDER_CANCELLED,
}
EVENT_DATA = {
    Action.FLAG: lambda now: {"flagged_at": now.isoformat()},
    Action.CANCEL: lambda now: {"cancelled_at": now.isoformat(), "release_reservation": False},
    Action.CANCEL_AND_RELEASE: lambda now: {"cancelled_at": now.isoformat(), "release_reservation": True},
}


@dataclass
class CancellationOutcome:
    flagged: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))  # account -> order ids
    cancelled: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    notice_errors: list[str] = field(default_factory=list)


def prepayment_orders_handle(*, now: datetime.datetime, configs: list[DunningConfig], dry_run: bool = False,
                             batch_size: int = 1000) -> CancellationOutcome:
    """Flag or cancel (and release) open prepayment orders older than `cancel_after_days`, then send
    one notice per sales account to its team listing the orders newly handled now."""
    outcome = CancellationOutcome()
    actions = {(c.sales_account_id, c.payment_method_id): c.cancellation_action for c in configs}
    q = selectors.cancellation_q(now=now, configs=configs)
    if q is selectors.NOTHING:
        return outcome
    candidates = Order.objects.filter(q).order_by("id").values_list("id", "sales_account_id", "payment_method_id")
    if dry_run:
        for order_id, account_id, method_id in candidates:
            action = actions[(account_id, method_id)]
            target = outcome.flagged if action == Action.FLAG else outcome.cancelled
            target[account_id].append(order_id)
        return outcome
    ids = list(candidates.values_list("id", flat=True))
    for chunk in chunked(ids, batch_size):
        with transaction.atomic():
            locked = list(Order.objects.filter(q, id__in=chunk).select_for_update(skip_locked=True)
                          .values_list("id", "sales_account_id", "payment_method_id", "number"))
            by_action: dict[str, list[int]] = defaultdict(list)
            events: dict[str, list[tuple[int, dict]]] = defaultdict(list)
            for order_id, account_id, method_id, number in locked:
                action = actions[(account_id, method_id)]
                by_action[action].append(order_id)
                events[action].append((account_id, {"order_number": number, **EVENT_DATA[action](now)}))
                (outcome.flagged if action == Action.FLAG else outcome.cancelled)[account_id].append(order_id)
            if by_action[Action.FLAG]:
                Order.objects.filter(id__in=by_action[Action.FLAG]).update(
                    flagged_for_cancellation_at=now, updated_at=touched())
            if by_action[Action.CANCEL]:
                Order.objects.filter(id__in=by_action[Action.CANCEL]).update(cancelled_at=now, updated_at=touched())
            if by_action[Action.CANCEL_AND_RELEASE]:
                Order.objects.filter(id__in=by_action[Action.CANCEL_AND_RELEASE]).update(
                    cancelled_at=now, reservation_released_at=now, updated_at=touched())
            for action, order_ids in by_action.items():
                order_events_log(((order_id, {"rule": "cancel_after_days"}) for order_id in order_ids),
                                 action=AUDIT_ACTION[action], at=now)
                events_emit(EVENT_TYPE[action], events[action], now=now)
    _send_team_notices(outcome, now=now)
    return outcome


def _send_team_notices(outcome: CancellationOutcome, *, now: datetime.datetime) -> None:
    account_ids = set(outcome.flagged) | set(outcome.cancelled)
    for account in SalesAccount.objects.filter(id__in=account_ids):
        if not account.team_email:
            outcome.notice_errors.append(stored_text(
                gettext_noop("%(account)s: no team e-mail address set, no notice sent"), account=account.name))
            continue
        flagged = Order.objects.filter(id__in=outcome.flagged.get(account.id, [])).select_related("payment_method")
        cancelled = Order.objects.filter(id__in=outcome.cancelled.get(account.id, [])).select_related(
            "payment_method")
        with translation.override(account.language):
            flagged, cancelled = list(flagged), list(cancelled)
            context = {"account": account, "flagged": flagged, "cancelled": cancelled, "now": now,
                       "total": len(flagged) + len(cancelled)}
            subject = render_to_string("dunning/email/team_notice_subject.txt", context).strip()
            body = render_to_string("dunning/email/team_notice.txt", context)
        try:
            EmailMultiAlternatives(subject=" ".join(subject.split()), body=body, from_email=account.sender_email,
                                   to=[account.team_email]).send()
        except Exception as exc:
            logger.exception("team notice for %s failed", account.name)
            outcome.notice_errors.append(stored_text(gettext_noop("%(account)s: notice failed: %(error)s"),
                                                      account=account.name, error=error_text(exc)))
