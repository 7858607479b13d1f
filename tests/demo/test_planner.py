"""The demo planner on its own: plain functions, no database (demo.planner imports no Django)."""

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from demo import content
from demo.planner import Moment, order_specs
from tests.demo.rules import level_on_seed_day

ROOT = Path(__file__).resolve().parents[2]
PLAN = order_specs()


def test_the_planner_imports_neither_django_nor_a_model():
    code = ("import sys, demo.planner; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'django', 'accounts', 'orders', 'dunning', 'backoffice'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_same_seed_same_plan_other_seed_other_plan():
    assert order_specs() == PLAN
    assert order_specs(seed=content.SEED) == PLAN
    assert [s.number for s in order_specs(seed=7)] != [s.number for s in PLAN]


def test_counts_and_numbers_unique_per_account():
    per_account = Counter(s.account for s in PLAN)
    assert per_account == {account: mix["count"] for account, mix in content.ORDER_MIX.items()}
    numbers = [(s.account, s.number) for s in PLAN]
    assert len(set(numbers)) == len(numbers)
    assert all(s.number and len(s.number) <= 64 for s in PLAN)


@pytest.mark.parametrize("seed", [content.SEED, 1, 2, 3])
def test_every_level_has_orders_due_on_the_seed_day(seed):
    levels: dict[object, set[str]] = defaultdict(set)
    counts: Counter = Counter()
    for spec in order_specs(seed=seed):
        level = level_on_seed_day(spec)
        levels[level].add(spec.account)
        counts[level] += 1
    for level in (1, 2, 3, "completed"):
        assert counts[level] >= 3, (level, counts)
    assert levels[1] == {"Webshop", "eBay", "Amazon"}


@pytest.mark.parametrize("seed", [content.SEED, 1, 2, 3])
def test_reminders_went_out_when_due_and_respect_the_gap(seed):
    for spec in order_specs(seed=seed):
        days = spec.reminder_days_ago
        if not days:
            continue
        cfg = content.config(spec.account, spec.method)
        term, l1, l2, l3, gap = (content.payment_term_days(spec.method), cfg["level_1_days"], cfg["level_2_days"],
                                 cfg["level_3_days"], cfg["min_days_between_reminders"])
        assert cfg["is_active"] and spec.customer_email and spec.total >= cfg["minimum_amount"], spec
        assert len(days) <= 3
        assert all(d >= 1 for d in days), spec  # all before the seed day
        for earlier, later in zip(days, days[1:], strict=False):
            assert earlier - later >= gap, spec  # oldest first, at least the gap apart
        for level, d in enumerate(days, 1):
            overdue_then = spec.age_days - d - term
            assert overdue_then >= (l1, l2, l3)[level - 1], (level, spec)


@pytest.mark.parametrize("seed", [content.SEED, 1, 2, 3])
def test_states_are_consistent(seed):
    for spec in order_specs(seed=seed):
        cfg = content.config(spec.account, spec.method)
        assert spec.paid_days_ago is None or spec.cancelled_days_ago is None, spec
        assert spec.age_days >= 1 and 7 * 60 <= spec.order_minute <= 22 * 60
        if spec.blocked_reason:
            assert spec.is_open and spec.blocked_days_ago is not None and spec.blocked_reason in content.BLOCK_REASONS
        else:
            assert spec.blocked_days_ago is None
        if spec.flagged_days_ago is not None:
            assert spec.is_open and spec.method == "prepayment" and cfg["cancellation_action"] == content.FLAG
            assert spec.age_days - spec.flagged_days_ago == cfg["cancel_after_days"]
        if spec.auto_cancelled:
            assert spec.method == "prepayment" and cfg["cancellation_action"] != content.FLAG
            assert spec.age_days - spec.cancelled_days_ago == cfg["cancel_after_days"]
            assert spec.released == (cfg["cancellation_action"] == content.CANCEL_AND_RELEASE)
        else:
            assert not spec.released
        assert spec.language in ("", "de", "en") and spec.language != content.account_language(spec.account)
        assert spec.currency in ("EUR", "GBP") and spec.total > 0


@pytest.mark.parametrize("seed", [content.SEED, 1, 2, 3])
def test_history_is_in_order(seed):
    for spec in order_specs(seed=seed):
        moments = [spec.ordered, spec.imported] + [m for _level, m in spec.reminders]
        assert [m.key for m in moments] == sorted(m.key for m in moments), spec
        last = moments[-1]
        for later in (spec.blocked, spec.paid, spec.cancelled):  # nothing is reminded after these
            if later is not None:
                assert later.key > last.key, spec
        if spec.flagged is not None:  # a flagged order is still reminded: the flag only asks staff to cancel
            assert spec.flagged.key > spec.imported.key, spec
        assert all(isinstance(m, Moment) and m.days_ago >= 1 and 0 <= m.minute < 24 * 60
                   for m in [*moments, spec.blocked, spec.flagged, spec.paid, spec.cancelled] if m is not None)


def test_every_state_on_every_account():
    for account in content.ORDER_MIX:
        specs = [s for s in PLAN if s.account == account]
        open_ = [s for s in specs if s.is_open]
        assert any(s.paid_days_ago is not None for s in specs), account
        assert any(s.cancelled_days_ago is not None for s in specs), account
        assert any(s.blocked_reason for s in open_), account
        assert any(not s.customer_email for s in open_), account
        assert any(s.language for s in specs), account  # not in the account's language
        assert any(level_on_seed_day(s) == 1 and s.language for s in open_), account
    assert any(s.flagged_days_ago is not None for s in PLAN)
    assert any(s.auto_cancelled and s.released for s in PLAN)
    assert any(s.auto_cancelled and not s.released for s in PLAN)
    # some stale prepayment orders are left for the next job run (it then sends a team notice)
    left = [s for s in PLAN if s.scenario == "stale" and s.is_open and s.flagged_days_ago is None
            and not s.blocked_reason]
    assert left


def test_content_uses_the_models_values():
    from accounts.models import Language, SalesAccount
    from dunning.models import DunningConfig
    from orders.models import PaymentMethod

    assert {a["channel"] for a in content.ACCOUNTS} <= set(SalesAccount.Channel.values)
    assert {a["language"] for a in content.ACCOUNTS} | set(content.LANGUAGES) <= set(Language.values)
    assert {content.FLAG, content.CANCEL, content.CANCEL_AND_RELEASE} == set(DunningConfig.CancellationAction.values)
    for name, default in content.CONFIG_DEFAULTS.items():
        assert DunningConfig._meta.get_field(name).get_default() == default, name
    assert all(set(m) <= {f.name for f in PaymentMethod._meta.get_fields()} for m in content.METHODS)
    for cfg in content.CONFIGS.values():
        assert set(cfg) <= set(content.CONFIG_DEFAULTS)


def test_reminder_templates_are_read_from_the_files():
    from dunning.templating import validate_template_fields

    assert set(content.TEMPLATES) == {(name, language) for name in content.LEVEL_TEMPLATES.values()
                                      for language in content.LANGUAGES}
    files = {p.name for p in content.TEMPLATE_DIR.iterdir()}
    read = {f"level-{level}.{language}.{part}" for level in content.LEVEL_TEMPLATES for language in content.LANGUAGES
            for part in ("subject.txt", "body.txt")}
    assert read <= files
    assert all(f in read or f.endswith(".body.html") for f in files)  # no stray file that is never read
    for texts in content.TEMPLATES.values():
        assert texts["subject"] and "\n" not in texts["subject"] and "{{ order.number }}" in texts["subject"]
        assert texts["body"].endswith("\n")
        validate_template_fields(**texts)
    assert content.TEMPLATES[("Zahlungserinnerung", "de")]["html_body"].startswith("<p>Guten Tag")
