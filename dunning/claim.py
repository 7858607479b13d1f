"""The claim of an order on a day: principal, paid, fees, flat fee, default interest, total due;
and the payment deadline a reminder sets (docs/rules/claim.md).

`claim_compute` is ONE pure function: plain data in (dates, Decimals, lists), a `Claim` out, no
database, no clock. The engine, the order page, the Notify preview and the tests all call it, so
what a reminder says, what the page shows and what the tests prove cannot disagree.

The rules (PRODUCT.md "The claim", §§ 286, 288, 367, 193 BGB):

- default starts (`default_from`): business customer: the day after the due date; consumer: the
  day after the deadline of the first reminder (none before that reminder exists);
- interest (if charged): for each day d with default_from <= d <= on, on the principal outstanding
  that day, at (base rate valid that day + 5 points consumer / + 9 points business) / days of d's
  calendar year (365 or 366). Summed exactly (Fraction), never compounded, rounded half-up to the
  cent once. The sum is computed per run of days with the same principal, rate and year length, so
  the cost is a few segments, not one step per day;
- fees: consumer: the fees of the levels sent so far except level 1 (the first reminder creates
  default); business with the flat fee on: 40.00 once from the first reminder on, instead of fees;
  business with the flat fee off: the fees of every level sent, level 1 included;
- payments (in booking order) cover fees and flat fee first, then the interest accrued up to the
  payment day, then principal (§ 367 BGB). Interest after a payment runs on the principal left;
- total_due = principal + fees + flat fee + interest - paid, never negative: a payment larger than
  the claim leaves total_due 0 and shows the overpayment in `overpaid` (never a negative claim).

Currencies: fees are in the order's currency (the config states plain amounts; a seller selling in
GBP sets GBP-sized fees or none). The 40 EUR flat fee is a EUR amount fixed by law; converting it
would need an exchange rate of a day nobody agreed on, so non-EUR orders get no flat fee (a
documented, tested choice). Interest is currency-independent.

A zero principal (a negative total is treated as zero) is no claim: no fees, flat fee or interest.
An order paid in full before it was due has no interest either: nothing was outstanding in default."""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

import holidays

FLAT_FEE = Decimal("40.00")  # § 288 (5) BGB, EUR
FLAT_FEE_CURRENCY = "EUR"
CONSUMER_POINTS = Decimal("5")  # § 288 (1) BGB
BUSINESS_POINTS = Decimal("9")  # § 288 (2) BGB
CENT = Decimal("0.01")
SNAPSHOT_FIELDS = ("principal", "paid", "fees", "flat_fee", "interest", "total_due")
ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Claim:
    """What the customer owes on `on`. `principal`, `fees`, `flat_fee` and `interest` are what was
    charged (before payments); `paid` is what payments covered of them; `total_due` the rest.
    `principal + fees + flat_fee + interest - paid == total_due` always holds."""

    on: datetime.date
    currency: str
    principal: Decimal
    paid: Decimal
    fees: Decimal
    flat_fee: Decimal
    interest: Decimal
    total_due: Decimal
    default_from: datetime.date | None
    principal_outstanding: Decimal
    overpaid: Decimal = Decimal("0.00")

    def snapshot(self) -> dict[str, str]:
        """The figures a Reminder row stores (`claim_snapshot`): decimal strings with two places."""
        return {name: f"{getattr(self, name):.2f}" for name in SNAPSHOT_FIELDS}


def _cents(value: Fraction) -> Decimal:
    """`value` rounded half-up to the cent, exactly: integer arithmetic on the fraction, no float
    and no cut-off decimal expansion. Never negative here (interest is never negative)."""
    if not value:  # no interest (the common case): no fraction arithmetic
        return Decimal("0.00")
    hundredths = value * 100
    whole, rest = divmod(hundredths.numerator, hundredths.denominator)
    if 2 * rest >= hundredths.denominator:
        whole += 1
    return Decimal(whole).scaleb(-2).quantize(CENT)


def _year_days(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def _rate_on(day: datetime.date, rates: Sequence[tuple[datetime.date, Decimal]]) -> Decimal | None:
    """The rate valid on `day` from `rates` sorted by date: the last one from on or before it."""
    found = None
    for valid_from, rate in rates:
        if valid_from <= day:
            found = rate
        else:
            break
    return found


def interest_between(*, principal: Decimal, start: datetime.date, end: datetime.date, points: Decimal,
                     rates: Sequence[tuple[datetime.date, Decimal]]) -> Fraction:
    """Exact interest on `principal` for each day start <= d <= end (both counted), at (base rate of d
    + points) percent a year / days of d's year. Split at every rate change and every 1 January.
    A day before the first known rate, or a negative yearly rate, earns nothing (never negative).

    Each segment (same rate, same year) is principal * yearly * days / (100 * days of the year),
    summed in integers (numerator and denominator of the exact ratios of the Decimals) and made
    ONE Fraction at the end: the same exact value as summing Fractions, without a gcd per step."""
    if principal <= 0 or end < start:
        return Fraction(0)
    p_num, p_den = principal.as_integer_ratio()
    num, den = 0, 1  # the exact sum num/den, not reduced until the end
    # the days where a segment may start anew: rate changes and the new years in [start, end]
    cuts = {valid_from for valid_from, _ in rates if start < valid_from <= end}
    cuts.update(datetime.date(year, 1, 1) for year in range(start.year + 1, end.year + 1))
    bounds = [start, *sorted(cuts), end + ONE_DAY]
    for first, after in zip(bounds, bounds[1:], strict=False):
        days = (after - first).days
        base = _rate_on(first, rates)
        if days <= 0 or base is None:
            continue
        yearly = base + points
        if yearly <= 0:
            continue
        y_num, y_den = yearly.as_integer_ratio()
        term_num = p_num * y_num * days
        term_den = p_den * y_den * 100 * _year_days(first.year)
        num, den = num * term_den + term_num * den, den * term_den
    return Fraction(num, den)


def _levels_fee(levels_sent: Iterable[int], fees: Mapping[int, Decimal], *, skip_first: bool) -> Decimal:
    return sum((Decimal(fees.get(level, 0)) for level in sorted(set(levels_sent))
                if not (skip_first and level == 1)), Decimal("0"))


def claim_compute(*, total: Decimal, currency: str, is_business: bool, due_date: datetime.date,
                  first_deadline: datetime.date | None, levels_sent: Iterable[int], fees: Mapping[int, Decimal],
                  charge_flat_fee_b2b: bool, charge_interest: bool,
                  base_rates: Iterable[tuple[datetime.date, Decimal]],
                  payments: Iterable[tuple[datetime.date, Decimal]], on: datetime.date) -> Claim:
    """The claim of an order on `on` (see the module docstring for the rules).

    `levels_sent`: the levels sent so far, the reminder being sent included. `first_deadline`: the
    deadline the first reminder set (None before it was sent; a consumer is then not in default).
    `payments`: (booking date, amount) of what the customer paid; those after `on` are ignored,
    non-positive ones too. Raises ValueError for a negative fee."""
    levels = sorted(set(levels_sent))
    for level, fee in fees.items():
        if Decimal(fee) < 0:
            raise ValueError(f"the fee of level {level} is negative ({fee})")
    principal = max(Decimal(total), Decimal("0")).quantize(CENT)
    # the rates matter only with interest: without it they are not even sorted
    rates = sorted((valid_from, Decimal(rate)) for valid_from, rate in base_rates) if charge_interest else []

    if is_business:
        default_from = due_date + ONE_DAY
        if charge_flat_fee_b2b:
            level_fees = Decimal("0")
            flat_fee = FLAT_FEE if levels and currency == FLAT_FEE_CURRENCY else Decimal("0")
        else:
            level_fees = _levels_fee(levels, fees, skip_first=False)
            flat_fee = Decimal("0")
        points = BUSINESS_POINTS
    else:
        default_from = first_deadline + ONE_DAY if first_deadline is not None else None
        level_fees = _levels_fee(levels, fees, skip_first=True)
        flat_fee = Decimal("0")
        points = CONSUMER_POINTS
    level_fees = level_fees.quantize(CENT)
    flat_fee = flat_fee.quantize(CENT)
    if principal == 0:  # nothing owed, nobody in default: no costs either
        level_fees = flat_fee = Decimal("0.00")

    # Walk the payments in date order: interest accrues on the principal outstanding between them.
    # Money moves in cents: a payment that reaches the interest covers the interest accrued so far
    # rounded to the cent; the claim's interest is the exact sum rounded once at the end.
    costs_open = level_fees + flat_fee  # fees and flat fee not yet covered
    outstanding = principal
    interest_exact = Fraction(0)  # all interest accrued, exactly
    interest_covered = Decimal("0")  # what payments covered of it, in cents
    accrued_until = default_from - ONE_DAY if default_from is not None else None  # last day counted
    paid = Decimal("0")
    overpaid = Decimal("0")
    booked = sorted((day, Decimal(amount).quantize(CENT)) for day, amount in payments
                    if day <= on and Decimal(amount) > 0)

    def accrue(until: datetime.date) -> None:
        nonlocal interest_exact, accrued_until
        if not charge_interest or accrued_until is None or until <= accrued_until:
            return
        interest_exact += interest_between(principal=outstanding, start=accrued_until + ONE_DAY, end=until,
                                           points=points, rates=rates)
        accrued_until = until

    for day, amount in booked:
        accrue(day)  # the payment day itself still accrues on the principal before the payment
        left = amount
        for part in ("costs", "interest", "principal"):
            if part == "costs":
                take = min(left, costs_open)
                costs_open -= take
            elif part == "interest":
                take = min(left, _cents(interest_exact) - interest_covered)
                interest_covered += take
            else:
                take = min(left, outstanding)
                outstanding -= take
            left -= take
            paid += take
        overpaid += left
    accrue(on)

    interest = _cents(interest_exact)
    total_due = costs_open + (interest - interest_covered) + outstanding
    return Claim(on=on, currency=currency, principal=principal, paid=paid, fees=level_fees, flat_fee=flat_fee,
                 interest=interest, total_due=total_due, default_from=default_from,
                 principal_outstanding=outstanding, overpaid=overpaid)


# --- the deadline -------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _german_holidays(year: int) -> frozenset[datetime.date]:
    """Nationwide German public holidays of `year` (no state's own ones: a reminder goes all over)."""
    return frozenset(holidays.Germany(years=year))


def is_working_day(day: datetime.date) -> bool:
    return day.weekday() < 5 and day not in _german_holidays(day.year)


def deadline_after(sent_on: datetime.date, days: int) -> datetime.date:
    """The payment deadline a reminder sent on `sent_on` sets: `days` later, moved to the next working
    day when that is a Saturday, Sunday or nationwide public holiday (§ 193 BGB)."""
    if days < 0:
        raise ValueError("the payment deadline cannot be negative")
    day = sent_on + datetime.timedelta(days=days)
    while not is_working_day(day):
        day += ONE_DAY
    return day
