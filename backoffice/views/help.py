"""How the overview computes: days overdue and levels with each active config's days, the minimum
gap, which levels go out automatically per sales account and when the automatic job runs next.
A page of its own, linked from the overview, so the overview keeps its query budget."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dunning.automation import automation_status
from dunning.models import LEVELS, ReminderAssignment
from dunning.selectors import active_configs

from ..permissions import back_office_required


@back_office_required
def overview_help(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    automatic: dict[int, list[int]] = {}
    for account_id, level in (ReminderAssignment.objects.filter(send_automatically=True)
                              .order_by("level").values_list("sales_account_id", "level")):
        automatic.setdefault(account_id, []).append(level)
    configs = sorted(active_configs(), key=lambda c: (c.sales_account.name, c.payment_method.name))
    rows = [
        {
            "config": config,
            "term": config.payment_method.payment_term_days,
            "days": [config.level_days(level) for level in LEVELS],
            "automatic": automatic.get(config.sales_account_id, []),
        }
        for config in configs
    ]
    return render(request, "backoffice/overview_help.html", {"rows": rows, "status": automation_status(now=now)})
