"""The claim (docs/rules/claim.md): hand-computed cases of `claim_compute`, the deadline, properties,
and bad input. Rates are the published ones seeded by migration 0006."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.claim import Claim, claim_compute, deadline_after
from dunning.models import BaseRate, DunningConfig

D = Decimal
day = datetime.date
RATES = [(day(2024, 7, 1), D("3.37")), (day(2025, 1, 1), D("2.27")), (day(2025, 7, 1), D("1.27")),
         (day(2026, 1, 1), D("1.27"))]
FEES = {1: D("5.00"), 2: D("2.50"), 3: D("5.00")}


def compute(**changes) -> Claim:
    args = dict(total=D("1000.00"), currency="EUR", is_business=False, due_date=day(2026, 3, 1),
                first_deadline=None, levels_sent=[1], fees=FEES, charge_flat_fee_b2b=False, charge_interest=True,
                base_rates=RATES, payments=[], on=day(2026, 3, 31))
    args.update(changes)
    return claim_compute(**args)


def figures(claim: Claim) -> tuple[str, ...]:
    return tuple(claim.snapshot().values())  # principal, paid, fees, flat_fee, interest, total_due


CASES = {
    # Consumer across 1 July 2025: first deadline 20.06. -> default from 21.06.; claim on 10.07.
    # 21.06.-30.06.: 10 days at 2.27 + 5 = 7.27 %: 1000 * 7.27 % * 10 / 365 = 1.991780...
    # 01.07.-10.07.: 10 days at 1.27 + 5 = 6.27 %: 1000 * 6.27 % * 10 / 365 = 1.717808...
    # interest 3.709589 -> 3.71; fees: levels 1 and 2 sent, level 1 free -> 2.50
    # total due 1000 + 2.50 + 3.71 = 1006.21
    "consumer across 1 July": (
        dict(due_date=day(2025, 6, 1), first_deadline=day(2025, 6, 20), levels_sent=[1, 2], on=day(2025, 7, 10)),
        ("1000.00", "0.00", "2.50", "0.00", "3.71", "1006.21")),
    # Business across 1 January 2025 (2024 is a leap year: 366 days), flat fee on: due 20.12.2024 ->
    # default from 21.12.2024; claim on 10.01.2025.
    # 21.12.-31.12.2024: 11 days at 3.37 + 9 = 12.37 %: 500 * 12.37 % * 11 / 366 = 1.858879...
    # 01.01.-10.01.2025: 10 days at 2.27 + 9 = 11.27 %: 500 * 11.27 % * 10 / 365 = 1.543835...
    # interest 3.402715 -> 3.40; flat fee 40.00 instead of fees; total 500 + 40 + 3.40 = 543.40
    "business across 1 January, flat fee": (
        dict(total=D("500.00"), is_business=True, due_date=day(2024, 12, 20), charge_flat_fee_b2b=True,
             on=day(2025, 1, 10)),
        ("500.00", "0.00", "0.00", "40.00", "3.40", "543.40")),
    # Business across the leap day 29.02.2028, flat fee off: due 20.02. -> default from 21.02.; on 01.03.
    # 21.02.-01.03.2028: 10 days (29.02. counted) at 1.27 + 9 = 10.27 %, year of 366 days:
    # 2000 * 10.27 % * 10 / 366 = 5.612021... -> 5.61; fees of levels 1 and 2: 5.00 + 2.50 = 7.50
    # total 2000 + 7.50 + 5.61 = 2013.11
    "business across the leap day, level fees": (
        dict(total=D("2000.00"), is_business=True, due_date=day(2028, 2, 20), levels_sent=[1, 2],
             on=day(2028, 3, 1)),
        ("2000.00", "0.00", "7.50", "0.00", "5.61", "2013.11")),
    # Consumer, partial payment of 300 on day 10 of default: first deadline 10.03.2026 -> default from 11.03.
    # 11.03.-20.03.: 10 days on 1000 at 6.27 %: 627 / 365 = 1.717808... (1.72 at the payment)
    # the payment: fees 2.50, interest 1.72, principal 295.78 -> 704.22 outstanding
    # 21.03.-31.03.: 11 days on 704.22 at 6.27 %: 704.22 * 6.27 % * 11 / 365 = 1.330686...
    # interest 1.717808 + 1.330686 = 3.048494 -> 3.05; total 1000 + 2.50 + 3.05 - 300 = 705.55
    # (= 704.22 principal + 1.33 interest not yet paid)
    "consumer, partial payment on day 10": (
        dict(first_deadline=day(2026, 3, 10), levels_sent=[1, 2], payments=[(day(2026, 3, 20), D("300.00"))]),
        ("1000.00", "300.00", "2.50", "0.00", "3.05", "705.55")),
    # Consumer before the first reminder's deadline passed: not in default, level 1 free -> the total.
    "consumer at the first reminder": (
        dict(first_deadline=None, levels_sent=[1]),
        ("1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00")),
    # Consumer at level 3: fees of levels 2 and 3 (2.50 + 5.00); interest off -> 0.
    "consumer at level 3, interest off": (
        dict(first_deadline=day(2026, 3, 10), levels_sent=[1, 2, 3], charge_interest=False),
        ("1000.00", "0.00", "7.50", "0.00", "0.00", "1007.50")),
    # Business in GBP with the flat fee on: the flat fee is EUR by law -> none (documented); interest
    # from 02.03.: 30 days at 10.27 %: 1000 * 10.27 % * 30 / 365 = 8.441095... -> 8.44
    "business in GBP: no flat fee": (
        dict(currency="GBP", is_business=True, charge_flat_fee_b2b=True),
        ("1000.00", "0.00", "0.00", "0.00", "8.44", "1008.44")),
    # A payment larger than the claim: everything covered, total due 0, 52.50 overpaid (not negative).
    # consumer, levels 1-2, interest off: 100 + 2.50 = 102.50 owed, 155.00 paid.
    "payment larger than the claim": (
        dict(total=D("100.00"), first_deadline=day(2026, 3, 10), levels_sent=[1, 2], charge_interest=False,
             payments=[(day(2026, 3, 20), D("155.00"))]),
        ("100.00", "102.50", "2.50", "0.00", "0.00", "0.00")),
    # Zero principal: no claim at all, no fees or flat fee.
    "zero principal": (
        dict(total=D("0.00"), is_business=True, charge_flat_fee_b2b=True, levels_sent=[1, 2]),
        ("0.00", "0.00", "0.00", "0.00", "0.00", "0.00")),
    # A business order paid in full before it was due (payment 25.02., due 01.03.): no interest.
    "paid before it was due": (
        dict(is_business=True, levels_sent=[], payments=[(day(2026, 2, 25), D("1000.00"))]),
        ("1000.00", "1000.00", "0.00", "0.00", "0.00", "0.00")),
}


@pytest.mark.parametrize("changes,expected", list(CASES.values()), ids=list(CASES))
def test_hand_computed_claims(changes, expected):
    assert figures(compute(**changes)) == expected


def test_overpayment_is_reported():
    claim = compute(**CASES["payment larger than the claim"][0])
    assert claim.overpaid == D("52.50")
    assert claim.total_due == 0


def test_payment_after_the_claim_day_is_ignored():
    claim = compute(first_deadline=day(2026, 3, 10), payments=[(day(2026, 4, 1), D("500.00"))])
    assert claim.paid == 0


DEADLINES = {
    # sent Fri 27.03.2026 + 7 = Good Friday 03.04. -> Sat, Easter Sunday, Easter Monday 06.04. -> Tue 07.04.
    "Good Friday": (day(2026, 3, 27), 7, day(2026, 4, 7)),
    # sent Fri 18.12.2026 + 7 = Christmas Day (Fri 25.12.) -> 26.12. (Sat, holiday), Sun -> Mon 28.12.
    "Christmas": (day(2026, 12, 18), 7, day(2026, 12, 28)),
    # sent Sat 14.11.2026 + 7 = Sat 21.11. -> Mon 23.11.
    "Saturday": (day(2026, 11, 14), 7, day(2026, 11, 23)),
    # Epiphany (06.01.) is a holiday in three states only: not nationwide, the deadline stays
    "state holiday stays": (day(2025, 12, 30), 7, day(2026, 1, 6)),
    # a plain Wednesday stays; 0 days: the sending day itself (a Thursday)
    "working day": (day(2026, 11, 11), 7, day(2026, 11, 18)),
    "zero days": (day(2026, 11, 12), 0, day(2026, 11, 12)),
}


@pytest.mark.parametrize("sent_on,days,expected", list(DEADLINES.values()), ids=list(DEADLINES))
def test_deadline(sent_on, days, expected):
    assert deadline_after(sent_on, days) == expected


def test_negative_deadline_refused():
    with pytest.raises(ValueError):
        deadline_after(day(2026, 1, 1), -1)


def test_negative_fee_refused_by_the_function():
    with pytest.raises(ValueError, match="negative"):
        compute(fees={1: D("0"), 2: D("-1"), 3: D("0")})


# --- properties ---------------------------------------------------------------------------------

_money = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False, allow_infinity=False)
_dates = st.dates(day(2024, 6, 1), day(2029, 12, 31))


@st.composite
def claims_input(draw):
    due = draw(_dates)
    first_deadline = draw(st.one_of(st.none(), st.dates(due, due + datetime.timedelta(days=60))))
    on = draw(st.dates(due, due + datetime.timedelta(days=400)))
    payments = draw(st.lists(st.tuples(st.dates(due - datetime.timedelta(days=10), on), _money), max_size=4))
    return dict(
        total=draw(_money), currency=draw(st.sampled_from(["EUR", "GBP"])), is_business=draw(st.booleans()),
        due_date=due, first_deadline=first_deadline,
        levels_sent=draw(st.lists(st.sampled_from([1, 2, 3]), unique=True)),
        fees={level: draw(st.decimals(min_value=0, max_value=50, places=2)) for level in (1, 2, 3)},
        charge_flat_fee_b2b=draw(st.booleans()), charge_interest=draw(st.booleans()),
        base_rates=RATES, payments=payments, on=on)


def _adds_up(claim: Claim) -> None:
    assert claim.principal + claim.fees + claim.flat_fee + claim.interest - claim.paid == claim.total_due
    assert claim.total_due >= 0 and claim.interest >= 0 and claim.paid >= 0 and claim.overpaid >= 0
    for value in claim.snapshot().values():
        assert D(value).as_tuple().exponent == -2


@settings(max_examples=300, deadline=None)
@given(args=claims_input())
def test_claim_adds_up_and_is_never_negative(args):
    _adds_up(claim_compute(**args))


@settings(max_examples=300, deadline=None)
@given(args=claims_input())
def test_interest_never_decreases_on_a_day_without_payment(args):
    today = claim_compute(**args)
    tomorrow = claim_compute(**{**args, "on": args["on"] + datetime.timedelta(days=1)})
    _adds_up(tomorrow)
    assert tomorrow.interest >= today.interest
    assert tomorrow.total_due >= today.total_due


@settings(max_examples=300, deadline=None)
@given(args=claims_input(), amount=_money, data=st.data())
def test_a_payment_never_increases_the_total_due(args, amount, data):
    when = data.draw(st.dates(args["due_date"] - datetime.timedelta(days=10), args["on"]))
    before = claim_compute(**args)
    after = claim_compute(**{**args, "payments": [*args["payments"], (when, amount)]})
    _adds_up(after)
    assert after.total_due <= before.total_due


# --- bad input in the models ------------------------------------------------------------------------

def test_negative_fee_is_a_validation_error(config):
    config.level_2_fee = D("-1.00")
    with pytest.raises(ValidationError) as excinfo:
        config.full_clean()
    assert "level_2_fee" in excinfo.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():  # and the database refuses it too
        DunningConfig.objects.filter(pk=config.pk).update(level_2_fee=D("-1.00"))


def test_defaults_keep_a_seller_out_of_trouble(config):
    assert (config.level_1_fee, config.level_2_fee, config.level_3_fee) == (0, 0, 0)
    assert not config.charge_interest and not config.charge_flat_fee_b2b
    assert config.payment_deadline_days == 7


@pytest.mark.django_db
def test_published_rates_are_seeded():
    assert [(r.valid_from, r.rate) for r in BaseRate.objects.order_by("valid_from")] == RATES


@pytest.mark.django_db
def test_two_rates_for_one_date_refused():
    with pytest.raises(ValidationError) as excinfo:
        BaseRate(valid_from=day(2026, 1, 1), rate=D("2.00")).full_clean()
    assert "valid_from" in excinfo.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        BaseRate.objects.create(valid_from=day(2026, 1, 1), rate=D("2.00"))


@pytest.mark.django_db
def test_rate_without_a_date_refused():
    with pytest.raises(ValidationError) as excinfo:
        BaseRate(valid_from=None, rate=D("2.00")).full_clean()
    assert "valid_from" in excinfo.value.message_dict

