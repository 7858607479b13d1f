"""The demo scenario planner: which orders exist, in which state, and what happened to them when.

Pure: no database, no Django. `order_specs()` draws every order from `random.Random(seed)` (42 by
default), so numbers, customers, amounts and histories are the same on every call and every
machine; the writer looks orders up by (account, number), which is what makes re-seeding add
nothing. Times are relative to the seed day: a `Moment` is (local days before the seed day, minute
of that local day), turned into an aware datetime by the writer. That keeps each level populated on
whatever day the demo is seeded, and the plan free of time zones.

Each order gets one scenario: open and not yet due, at level 1, 2 or 3 today ("level1".."level3"),
reminded but the gap to the next level not yet over ("waiting"), all three reminders sent
("completed"), dunning blocked, a prepayment order past `cancel_after_days` ("stale": flagged or
cancelled by the job, as its config says), paid (some after a first reminder) or cancelled by the
shop. Reminders are only planned for days on which the order was due for that level under its
config, at least `min_days_between_reminders` apart.

Changing the draws (their number or order) changes the order numbers, and an existing demo
database would then get a second set of orders: append new draws at the end, or derive new values
from the ones drawn (as `blocked_days_ago` is)."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from . import content

# Minutes of the day things happen at. The job runs early in the morning: it handles stale
# prepayment orders at 06:02 and sends level n at 06:05 + n.
JOB_MINUTE = 6 * 60 + 2
REMINDER_MINUTE = 6 * 60 + 5
IMPORT_MINUTE = 23 * 60 + 30  # the shop's nightly export arrives after the day's last order (22:00)

_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ı": "i", "'": "", " ": ""})


class Moment(NamedTuple):
    """A point in time relative to the seed day: `days_ago` local days before it, at `minute` of that day."""

    days_ago: int
    minute: int

    @property
    def key(self) -> tuple[int, int]:
        """Sorts chronologically (a NamedTuple itself would sort by days_ago, i.e. backwards)."""
        return (-self.days_ago, self.minute)


@dataclass
class OrderSpec:
    account: str
    method: str
    number: str
    customer_name: str
    customer_email: str
    language: str  # "" = the account's language
    total: Decimal
    currency: str
    age_days: int  # local days between the order date and the seed day
    order_minute: int  # minute of the day the order came in
    scenario: str = ""
    reminder_days_ago: list[int] = field(default_factory=list)  # per level, oldest (level 1) first
    paid_days_ago: int | None = None
    cancelled_days_ago: int | None = None  # by the shop, or by the job if auto_cancelled
    blocked_reason: str = ""
    blocked_days_ago: int | None = None
    flagged_days_ago: int | None = None
    auto_cancelled: bool = False
    released: bool = False  # the job also released the stock reservation

    @property
    def address(self) -> tuple[str, str, str, str, str]:
        """Customer number, street, postcode, city, country (orders.importing.ADDRESS_COLUMNS), picked by
        the order number: the same order always lives at the same address."""
        pick = zlib.crc32(self.number.encode())
        street = f"{content.STREETS[pick % len(content.STREETS)]} {pick % 97 + 1}"
        if self.language == "en":
            postcode, city, country = content.PLACES_EN[pick % len(content.PLACES_EN)]
        else:
            (postcode, city), country = content.PLACES[pick % len(content.PLACES)], ""
        return (f"K-{pick % 900000 + 100000}", street, postcode, city, country)

    # --- the order's history as moments -----------------------------------------------------

    @property
    def ordered(self) -> Moment:
        return Moment(self.age_days, self.order_minute)

    @property
    def imported(self) -> Moment:
        """When the order reached the back office: the import of the evening it was placed."""
        return Moment(self.age_days, IMPORT_MINUTE)

    @property
    def reminders(self) -> list[tuple[int, Moment]]:
        """(level, when it was sent), level 1 first."""
        return [(level, Moment(d, REMINDER_MINUTE + level)) for level, d in enumerate(self.reminder_days_ago, 1)]

    @property
    def paid(self) -> Moment | None:
        return None if self.paid_days_ago is None else Moment(self.paid_days_ago, 10 * 60 + self.order_minute % 300)

    @property
    def cancelled(self) -> Moment | None:
        return None if self.cancelled_days_ago is None else Moment(self.cancelled_days_ago, JOB_MINUTE)

    @property
    def blocked(self) -> Moment | None:
        if self.blocked_days_ago is None:
            return None
        return Moment(self.blocked_days_ago, 9 * 60 + self.order_minute % 480)

    @property
    def flagged(self) -> Moment | None:
        return None if self.flagged_days_ago is None else Moment(self.flagged_days_ago, JOB_MINUTE)

    @property
    def is_open(self) -> bool:
        return self.paid_days_ago is None and self.cancelled_days_ago is None


def level_days(account: str, method: str) -> tuple[int, int, int, int, int]:
    """(term, level 1, level 2, level 3, min gap) of the demo config of (account, method)."""
    cfg = content.config(account, method)
    return (content.payment_term_days(method), cfg["level_1_days"], cfg["level_2_days"], cfg["level_3_days"],
            cfg["min_days_between_reminders"])


def _reminder_plan(rng: random.Random, sent: int, *, last_min: int, last_max: int, gap: int) -> list[int]:
    """Days ago of `sent` reminders, oldest first, the last one last_min..last_max days ago, each gap apart."""
    if sent == 0:
        return []
    days = [rng.randint(last_min, last_max)]
    while len(days) < sent:
        days.insert(0, days[0] + gap + rng.randint(0, 5))
    return days


def _min_age(days_ago: list[int], term: int, levels: tuple[int, int, int]) -> int:
    """The youngest an order can be for its reminders to have been due when they were sent."""
    return max([d + term + levels[i] for i, d in enumerate(days_ago)], default=1)


def _plan(rng: random.Random, spec: OrderSpec, scenario: str) -> None:
    term, l1, l2, l3, gap = level_days(spec.account, spec.method)
    levels = (l1, l2, l3)
    if scenario == "not_due":
        spec.age_days = rng.randint(1, max(1, term + l1 - 1))
    elif scenario in ("level1", "level2", "level3"):
        level = int(scenario[-1])
        spec.reminder_days_ago = _reminder_plan(rng, level - 1, last_min=gap + 1, last_max=gap + 6, gap=gap)
        spec.age_days = max(term + levels[level - 1] + 1, _min_age(spec.reminder_days_ago, term, levels))
        spec.age_days += rng.randint(0, 10)
    elif scenario == "waiting":  # reminded, the next level is due but the gap is not over yet
        sent = rng.randint(1, 2)
        spec.reminder_days_ago = _reminder_plan(rng, sent, last_min=1, last_max=gap - 1, gap=gap)
        spec.age_days = max(term + levels[sent] + 1, _min_age(spec.reminder_days_ago, term, levels))
    elif scenario == "completed":
        spec.reminder_days_ago = _reminder_plan(rng, 3, last_min=1, last_max=30, gap=gap)
        spec.age_days = _min_age(spec.reminder_days_ago, term, levels) + rng.randint(0, 15)
    elif scenario == "blocked":
        spec.reminder_days_ago = _reminder_plan(rng, rng.randint(0, 1), last_min=gap + 1, last_max=20, gap=gap)
        spec.age_days = max(term + l2 + 1, _min_age(spec.reminder_days_ago, term, levels)) + rng.randint(0, 10)
        spec.blocked_reason = rng.choice(content.BLOCK_REASONS)
    elif scenario == "stale":  # prepayment past cancel_after_days: flagged or cancelled by the job
        spec.reminder_days_ago = _reminder_plan(rng, rng.randint(0, 3), last_min=1, last_max=5, gap=gap)
        spec.age_days = max(30, _min_age(spec.reminder_days_ago, term, levels)) + rng.randint(0, 10)
    elif scenario == "paid":
        if term and rng.random() < 0.3:  # paid after the first reminder
            spec.reminder_days_ago = _reminder_plan(rng, 1, last_min=3, last_max=20, gap=gap)
            spec.age_days = _min_age(spec.reminder_days_ago, term, levels) + rng.randint(0, 5)
            spec.paid_days_ago = rng.randint(1, spec.reminder_days_ago[0] - 1)
        else:
            spec.age_days = rng.randint(2, 90)
            spec.paid_days_ago = spec.age_days - rng.randint(1, min(spec.age_days - 1, term + 5))
    elif scenario == "cancelled":
        spec.age_days = rng.randint(5, 90)
        spec.cancelled_days_ago = rng.randint(1, spec.age_days - 1)
    else:
        raise ValueError(f"unknown demo scenario {scenario!r}")


def _blocked_days_ago(spec: OrderSpec) -> int:
    """Staff blocked dunning the day after the last reminder, or, if none went out, the day before
    level 1 fell due (so the job never reminded it). Derived, not drawn: see the module docstring."""
    if spec.reminder_days_ago:
        return spec.reminder_days_ago[-1] - 1
    term, l1, *_rest = level_days(spec.account, spec.method)
    return spec.age_days - term - l1 + 1


def _handle_stale_prepayment(rng: random.Random, spec: OrderSpec) -> None:
    """What the job would have done to an open prepayment order past cancel_after_days; a quarter
    is left for the next run, so that running the job shows a team notice."""
    cfg = content.config(spec.account, spec.method)
    cancel_after = cfg["cancel_after_days"]
    if (cancel_after is None or spec.paid_days_ago is not None or spec.cancelled_days_ago is not None
            or spec.blocked_reason or spec.age_days <= cancel_after + 1 or rng.random() < 0.25):
        return
    handled_days_ago = spec.age_days - cancel_after
    if cfg["cancellation_action"] == content.FLAG:
        spec.flagged_days_ago = handled_days_ago
    else:
        spec.cancelled_days_ago = handled_days_ago
        spec.auto_cancelled = True
        spec.released = cfg["cancellation_action"] == content.CANCEL_AND_RELEASE
        # nothing is reminded once cancelled
        spec.reminder_days_ago = [d for d in spec.reminder_days_ago if d > handled_days_ago]


def _number(account: str, i: int, rng: random.Random) -> str:
    if account == "eBay":
        return f"{rng.randint(10, 29)}-{13570 + 7 * i:05d}-{rng.randint(10000, 99999)}"
    if account == "Amazon":
        return f"302-{4518800 + 37 * i:07d}-{rng.randint(1000000, 9999999)}"
    return f"{100001 + i}"


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def order_specs(seed: int = content.SEED) -> list[OrderSpec]:
    """All demo orders, the same on every call with the same seed."""
    rng = random.Random(seed)
    dunned = {key for key, cfg in content.CONFIGS.items() if cfg.get("is_active")}
    specs = []
    for account, mix in content.ORDER_MIX.items():
        account_language = content.account_language(account)
        for i in range(mix["count"]):
            if i < len(content.GUARANTEED):
                method, scenario = content.GUARANTEED[i]
            else:
                method = _weighted(rng, mix["methods"])
                scenario = _weighted(rng, content.SCENARIO_WEIGHTS if (account, method) in dunned
                                     else content.UNDUNNED_WEIGHTS)
                if scenario == "stale" and method != "prepayment":
                    scenario = "level1"
            scenario, _plus, modifier = scenario.partition("+")
            english = modifier == "en" or (modifier == "" and rng.random() < mix["english"])
            language = "en" if english else "de"
            first, last = rng.choice(content.FIRST_NAMES[language]), rng.choice(content.LAST_NAMES[language])
            no_email = modifier == "noemail" or rng.random() < 0.06
            email = "" if no_email else (
                f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(content.MAIL_DOMAINS)}".lower().translate(_ASCII))
            currency = "GBP" if account == "Amazon" and english and rng.random() < 0.3 else "EUR"
            spec = OrderSpec(
                account=account, method=method, number=_number(account, i, rng), customer_name=f"{first} {last}",
                customer_email=email, language="" if language == account_language else language,
                total=Decimal(rng.choice([rng.randint(5, 60), rng.randint(20, 250), rng.randint(100, 1500)]))
                + Decimal(rng.choice([0, 50, 90, 95, 99])) / 100,
                currency=currency, age_days=1, order_minute=rng.randint(7 * 60, 22 * 60), scenario=scenario,
            )
            _plan(rng, spec, scenario)
            if not email:  # nobody could have been reminded
                spec.reminder_days_ago = []
            if method == "prepayment":
                _handle_stale_prepayment(rng, spec)
            if spec.blocked_reason:
                spec.blocked_days_ago = _blocked_days_ago(spec)
            specs.append(spec)
    return specs
