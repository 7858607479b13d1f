"""A run's stored details (`DunningRun.details`, JSON written by dunning.services.runs) read back
for people: per sales account and level what was sent, failed, left unclear or skipped (each skip
reason in words), the prepayment orders flagged and cancelled per account, and for a manual Notify
the level, the selection and the first skipped orders. Keys a row does not have are left out, so
runs recorded by older versions read as well."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import DunningLevel, DunningRun
from .selectors import Skip

SKIPPED_PREFIX = "skipped:"


@dataclass
class LevelRow:
    account: str
    level: str
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    due: int | None = None  # a dry run counts what is due instead
    reasons: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class RunSummary:
    rows: list[LevelRow] = field(default_factory=list)
    cancellation: list[tuple[str, int, int]] = field(default_factory=list)  # account, flagged, cancelled
    payments_matched: int | None = None
    level: str = ""  # a manual Notify's level
    selected: int | None = None
    reasons: list[tuple[str, int]] = field(default_factory=list)
    skipped_orders: list[tuple[int, str]] = field(default_factory=list)  # order id, reason
    unknown_orders: list[int] = field(default_factory=list)
    failed_errors: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.rows or self.cancellation or self.payments_matched or self.level or self.reasons
                    or self.failed_errors)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _level_label(value: Any) -> str:
    try:
        return str(DunningLevel.coerce(_int(value) or value).label)
    except ValueError:
        return str(value)


def _reasons(counts: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted(((Skip.label_of(code), _int(n)) for code, n in counts.items()), key=lambda r: (-r[1], r[0]))


def run_summary(run: DunningRun) -> RunSummary:
    details = run.details if isinstance(run.details, dict) else {}
    summary = RunSummary()
    if "payments_matched" in details:
        summary.payments_matched = _int(details["payments_matched"])
    for account, levels in sorted((details.get("levels") or {}).items()):
        for level, counts in sorted((levels or {}).items()):
            counts = counts or {}
            summary.rows.append(LevelRow(
                account=account, level=_level_label(level), sent=_int(counts.get("sent")),
                failed=_int(counts.get("failed")), unknown=_int(counts.get("unknown")),
                skipped=_int(counts.get("skipped")), due=_int(counts["due"]) if "due" in counts else None,
                reasons=_reasons({k[len(SKIPPED_PREFIX):]: n for k, n in counts.items()
                                  if k.startswith(SKIPPED_PREFIX)})))
    for account, counts in sorted((details.get("cancellation") or {}).items()):
        summary.cancellation.append((account, _int((counts or {}).get("flagged")),
                                     _int((counts or {}).get("cancelled"))))
    if run.trigger == DunningRun.Trigger.MANUAL:
        if details.get("level") is not None:
            summary.level = _level_label(details["level"])
        if details.get("selected") is not None:
            summary.selected = _int(details["selected"])
        summary.reasons = _reasons(details.get("skipped") or {})
        summary.skipped_orders = [(_int(order_id), Skip.label_of(reason))
                                  for order_id, reason in (details.get("skipped_orders") or {}).items()]
        summary.unknown_orders = [_int(order_id) for order_id in details.get("unknown_orders") or []]
        summary.failed_errors = [str(e) for e in details.get("failed_errors") or []]
    return summary
