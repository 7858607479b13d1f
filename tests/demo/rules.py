"""The level rule restated over a plan, in days, for the planner's unit tests (no database).
`test_seed_demo.test_plan_levels_match_the_level_rule` checks it against dunning.selectors on the
seeded orders, so it cannot drift from the real rule unnoticed."""

from demo import content
from demo.planner import OrderSpec, level_days


def level_on_seed_day(spec: OrderSpec) -> int | str | None:
    """1, 2, 3 or "completed" if the order is at that level on the seed day, else None."""
    cfg = content.config(spec.account, spec.method)
    if not cfg["is_active"] or not spec.is_open or spec.blocked_reason or spec.total < cfg["minimum_amount"]:
        return None
    sent = len(spec.reminder_days_ago)
    if sent == 3:
        return "completed"
    term, l1, l2, l3, gap = level_days(spec.account, spec.method)
    level = sent + 1
    if spec.age_days - term < (l1, l2, l3)[level - 1]:
        return None
    if sent and spec.reminder_days_ago[-1] < gap:
        return None
    return level
