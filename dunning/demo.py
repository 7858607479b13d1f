"""Demo data for `python manage.py seed_demo`: three sales accounts, payment methods, dunning configs,
German and English reminder templates, assignments, two users and a few hundred orders in every
state (each dunning level, paid, cancelled, blocked, flagged, without e-mail, English).

Idempotent: everything is looked up by its natural key (account name, method code, (account,
method), (template name, language), (account, level), username, (account, order number)) and only
what is missing is created; existing rows, passwords included, are left as they are. The orders are
generated with `random.Random(42)`, so their numbers, customers and amounts are always the same;
their dates are relative to `now`, so each level has orders on the day the demo is seeded."""

from __future__ import annotations

import datetime
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import Group, User
from django.db import transaction

from accounts.models import SalesAccount
from orders.models import Order, OrderEvent, PaymentMethod

from .models import DunningAutomation, DunningConfig, EmailTemplate, Reminder, ReminderAssignment
from .selectors import local_midnight, local_today
from .templating import CompiledTemplate, order_context

SEED = 42
BACK_OFFICE_GROUP = "Back office"
PAYMENT_INSTRUCTIONS = {
    "de": "Beispiel-Shop GmbH\nIBAN: DE02 1203 0000 0000 2020 51\nBIC: BYLADEM1001\nDeutsche Kreditbank Berlin",
    "en": "Beispiel-Shop GmbH\nIBAN: DE02 1203 0000 0000 2020 51\nBIC (SWIFT): BYLADEM1001\nDeutsche Kreditbank",
}

ACCOUNTS = [
    {"name": "Webshop", "channel": SalesAccount.Channel.WEBSHOP, "language": "de",
     "sender_email": "buchhaltung@beispiel-shop.example", "reply_to_email": "service@beispiel-shop.example",
     "team_email": "team@beispiel-shop.example", "payment_instructions": PAYMENT_INSTRUCTIONS["de"]},
    {"name": "eBay", "channel": SalesAccount.Channel.EBAY, "language": "de",
     "sender_email": "ebay@beispiel-shop.example", "reply_to_email": "service@beispiel-shop.example",
     "team_email": "team-ebay@beispiel-shop.example", "payment_instructions": PAYMENT_INSTRUCTIONS["de"]},
    {"name": "Amazon", "channel": SalesAccount.Channel.AMAZON, "language": "en",
     "sender_email": "amazon@beispiel-shop.example", "reply_to_email": "service@beispiel-shop.example",
     "team_email": "team-amazon@beispiel-shop.example", "payment_instructions": PAYMENT_INSTRUCTIONS["en"]},
]

METHODS = [
    {"code": "prepayment", "name": "Vorkasse", "is_prepayment": True, "payment_term_days": 0},
    {"code": "invoice", "name": "Rechnung", "is_prepayment": False, "payment_term_days": 14},
    {"code": "paypal", "name": "PayPal", "is_prepayment": False, "payment_term_days": 0},
    {"code": "cash_on_delivery", "name": "Nachnahme", "is_prepayment": False, "payment_term_days": 0},
]

_FLAG = DunningConfig.CancellationAction.FLAG
_CANCEL = DunningConfig.CancellationAction.CANCEL
_RELEASE = DunningConfig.CancellationAction.CANCEL_AND_RELEASE
_INVOICE = {"is_active": True, "level_1_days": 7, "level_2_days": 14, "level_3_days": 21,
            "min_days_between_reminders": 7}
_PREPAYMENT = {"is_active": True, "level_1_days": 3, "level_2_days": 10, "level_3_days": 17,
               "min_days_between_reminders": 7}
CONFIGS: dict[tuple[str, str], dict] = {
    ("Webshop", "invoice"): _INVOICE,
    ("Webshop", "prepayment"): {**_PREPAYMENT, "cancel_after_days": 21, "cancellation_action": _FLAG},
    ("Webshop", "paypal"): {**_INVOICE, "is_active": False},  # inactive: shows what "not dunned" looks like
    ("eBay", "invoice"): {**_INVOICE, "minimum_amount": Decimal("5.00")},
    ("eBay", "prepayment"): {**_PREPAYMENT, "minimum_amount": Decimal("5.00"), "cancel_after_days": 21,
                             "cancellation_action": _CANCEL},
    ("Amazon", "invoice"): {**_INVOICE, "level_1_days": 5, "level_2_days": 12, "level_3_days": 19},
    ("Amazon", "prepayment"): {**_PREPAYMENT, "cancel_after_days": 28, "cancellation_action": _RELEASE},
}

# --- templates ------------------------------------------------------------------------------------

_PAY_DE = ("{% if payment_instructions %}Bitte überweisen Sie den Betrag auf folgendes Konto:\n"
           "{{ payment_instructions }}\nVerwendungszweck: {{ order.number }}\n{% endif %}")
_PAY_EN = ("{% if payment_instructions %}Please transfer the amount to:\n"
           "{{ payment_instructions }}\nReference: {{ order.number }}\n{% endif %}")

TEMPLATES: dict[tuple[str, str], dict[str, str]] = {
    ("Zahlungserinnerung", "de"): {
        "subject": "Zahlungserinnerung zu Ihrer Bestellung {{ order.number }}",
        "body": (
            "Guten Tag {{ customer_name }},\n\n"
            "vielen Dank für Ihre Bestellung {{ order.number }} vom {{ order.ordered_at }} bei "
            "{{ sales_account.name }}.\n\n"
            "Sicher ist es Ihrer Aufmerksamkeit entgangen: Der Betrag von {{ order.total }} war am "
            "{{ order.due_date }} fällig, ist bei uns aber noch nicht eingegangen.\n\n"
            + _PAY_DE +
            "\nHaben Sie inzwischen bezahlt? Dann betrachten Sie diese E-Mail bitte als gegenstandslos.\n\n"
            "Mit freundlichen Grüßen\nIhr Team von {{ sales_account.name }}\n"
        ),
        "html_body": (
            "<p>Guten Tag {{ customer_name }},</p>\n"
            "<p>vielen Dank für Ihre Bestellung <strong>{{ order.number }}</strong> vom {{ order.ordered_at }} "
            "bei {{ sales_account.name }}.</p>\n"
            "<p>Sicher ist es Ihrer Aufmerksamkeit entgangen: Der Betrag von <strong>{{ order.total }}</strong> "
            "war am {{ order.due_date }} fällig, ist bei uns aber noch nicht eingegangen.</p>\n"
            "{% if payment_instructions %}<p>Bitte überweisen Sie den Betrag auf folgendes Konto:</p>\n"
            "<pre>{{ payment_instructions }}</pre>\n"
            "<p>Verwendungszweck: <strong>{{ order.number }}</strong></p>{% endif %}\n"
            "<p>Haben Sie inzwischen bezahlt? Dann betrachten Sie diese E-Mail bitte als gegenstandslos.</p>\n"
            "<p>Mit freundlichen Grüßen<br>Ihr Team von {{ sales_account.name }}</p>\n"
        ),
    },
    ("Zahlungserinnerung", "en"): {
        "subject": "Payment reminder for your order {{ order.number }}",
        "body": (
            "Dear {{ customer_name }},\n\n"
            "thank you for your order {{ order.number }} of {{ order.ordered_at }} at {{ sales_account.name }}.\n\n"
            "Perhaps it has slipped your mind: the amount of {{ order.total }} was due on {{ order.due_date }} "
            "and we have not received it yet.\n\n"
            + _PAY_EN +
            "\nIf you have paid in the meantime, please disregard this e-mail.\n\n"
            "Kind regards\nYour {{ sales_account.name }} team\n"
        ),
        "html_body": (
            "<p>Dear {{ customer_name }},</p>\n"
            "<p>thank you for your order <strong>{{ order.number }}</strong> of {{ order.ordered_at }} at "
            "{{ sales_account.name }}.</p>\n"
            "<p>Perhaps it has slipped your mind: the amount of <strong>{{ order.total }}</strong> was due on "
            "{{ order.due_date }} and we have not received it yet.</p>\n"
            "{% if payment_instructions %}<p>Please transfer the amount to:</p>\n"
            "<pre>{{ payment_instructions }}</pre>\n"
            "<p>Reference: <strong>{{ order.number }}</strong></p>{% endif %}\n"
            "<p>If you have paid in the meantime, please disregard this e-mail.</p>\n"
            "<p>Kind regards<br>Your {{ sales_account.name }} team</p>\n"
        ),
    },
    ("1. Mahnung", "de"): {
        "subject": "1. Mahnung zu Ihrer Bestellung {{ order.number }}",
        "body": (
            "Guten Tag {{ customer_name }},\n\n"
            "leider konnten wir für Ihre Bestellung {{ order.number }} vom {{ order.ordered_at }} trotz unserer "
            "Zahlungserinnerung noch keinen Zahlungseingang feststellen. Der Betrag von {{ order.total }} ist "
            "seit dem {{ order.due_date }} fällig, also seit {{ order.days_overdue }} Tagen.\n\n"
            "Bitte begleichen Sie den offenen Betrag innerhalb der nächsten 7 Tage.\n"
            + _PAY_DE +
            "\nSollte sich Ihre Zahlung mit dieser E-Mail überschnitten haben, ist sie gegenstandslos. "
            "Bei Fragen antworten Sie einfach auf diese E-Mail.\n\n"
            "Mit freundlichen Grüßen\nIhr Team von {{ sales_account.name }}\n"
        ),
    },
    ("1. Mahnung", "en"): {
        "subject": "Second reminder: your order {{ order.number }}",
        "body": (
            "Dear {{ customer_name }},\n\n"
            "despite our payment reminder we have not yet received payment for your order {{ order.number }} "
            "of {{ order.ordered_at }}. The amount of {{ order.total }} has been due since {{ order.due_date }}, "
            "that is for {{ order.days_overdue }} days.\n\n"
            "Please settle the open amount within the next 7 days.\n"
            + _PAY_EN +
            "\nIf your payment and this e-mail have crossed, please disregard it. "
            "If you have any questions, simply reply to this e-mail.\n\n"
            "Kind regards\nYour {{ sales_account.name }} team\n"
        ),
    },
    ("Letzte Mahnung", "de"): {
        "subject": "Letzte Mahnung zu Ihrer Bestellung {{ order.number }}",
        "body": (
            "Guten Tag {{ customer_name }},\n\n"
            "für Ihre Bestellung {{ order.number }} vom {{ order.ordered_at }} ist der Betrag von "
            "{{ order.total }} trotz Zahlungserinnerung und Mahnung weiterhin offen. Er ist seit dem "
            "{{ order.due_date }} fällig ({{ order.days_overdue }} Tage).\n\n"
            "Bitte überweisen Sie den Betrag spätestens innerhalb von 7 Tagen. Geht die Zahlung bis dahin "
            "nicht ein, müssen wir leider weitere Schritte einleiten.\n"
            + _PAY_DE +
            "\nFalls Sie bereits bezahlt haben, danken wir Ihnen und bitten Sie, diese E-Mail zu entschuldigen. "
            "Gibt es ein Problem mit Ihrer Bestellung, antworten Sie uns bitte: Wir finden eine Lösung.\n\n"
            "Mit freundlichen Grüßen\nIhr Team von {{ sales_account.name }}\n"
        ),
    },
    ("Letzte Mahnung", "en"): {
        "subject": "Final reminder: your order {{ order.number }}",
        "body": (
            "Dear {{ customer_name }},\n\n"
            "the amount of {{ order.total }} for your order {{ order.number }} of {{ order.ordered_at }} is still "
            "outstanding despite our earlier reminders. It has been due since {{ order.due_date }} "
            "({{ order.days_overdue }} days).\n\n"
            "Please transfer the amount within 7 days at the latest. If we do not receive it by then, we will "
            "unfortunately have to take further steps.\n"
            + _PAY_EN +
            "\nIf you have already paid, thank you, and please excuse this e-mail. If there is a problem with "
            "your order, please reply to us: we will find a solution.\n\n"
            "Kind regards\nYour {{ sales_account.name }} team\n"
        ),
    },
}
LEVEL_TEMPLATES = {1: "Zahlungserinnerung", 2: "1. Mahnung", 3: "Letzte Mahnung"}
AUTOMATIC = {("Webshop", 1), ("Webshop", 2)}

# --- customers ------------------------------------------------------------------------------------

FIRST_NAMES = {
    "de": ["Anna", "Lukas", "Sophie", "Maximilian", "Marie", "Jonas", "Lea", "Felix", "Emma", "Paul", "Hannah",
           "Leon", "Mia", "Jürgen", "Sabine", "Klaus", "Petra", "Uwe", "Birgit", "Dieter", "Özlem", "Björn"],
    "en": ["Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Emily", "Charlie", "Grace", "Thomas",
           "Sarah", "James", "Olivia", "William", "Chloe"],
}
LAST_NAMES = {
    "de": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
           "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
           "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Yılmaz"],
    "en": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
           "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Clarke", "O'Brien"],
}
_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ı": "i", "'": "", " ": ""})
MAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example", "post.example"]
BLOCK_REASONS = [
    "Kunde hat Zahlung per Telefon zugesagt",
    "Reklamation offen (Ware beschädigt)",
    "Ratenzahlung vereinbart",
    "Rücksendung unterwegs",
    "Zahlung laut Kunde erfolgt, Kontoauszug angefordert",
]

# --- orders ---------------------------------------------------------------------------------------

# Per account: how many orders, payment method weights, share of orders in English.
ORDER_MIX = {
    "Webshop": {"count": 150, "methods": {"invoice": 40, "prepayment": 30, "paypal": 20, "cash_on_delivery": 10},
                "english": 0.15},
    "eBay": {"count": 90, "methods": {"prepayment": 45, "paypal": 45, "invoice": 10}, "english": 0.1},
    "Amazon": {"count": 60, "methods": {"invoice": 70, "prepayment": 30}, "english": 0.7},
}
# Every account starts with these (method, scenario) pairs, so each state exists on every account; the
# rest is drawn with SCENARIO_WEIGHTS. "+noemail" and "+en" force those attributes.
GUARANTEED = [
    ("invoice", "level1"), ("invoice", "level1+noemail"), ("invoice", "level1+en"), ("invoice", "level2"),
    ("invoice", "level2+en"), ("invoice", "level3"), ("invoice", "level3"), ("invoice", "completed"),
    ("invoice", "completed+en"), ("invoice", "waiting"), ("invoice", "blocked"), ("invoice", "paid"),
    ("invoice", "cancelled"), ("prepayment", "level1"), ("prepayment", "level2"), ("prepayment", "stale"),
    ("prepayment", "stale"), ("prepayment", "stale+en"), ("prepayment", "paid"),
]
SCENARIO_WEIGHTS = {"paid": 35, "cancelled": 5, "not_due": 12, "level1": 12, "waiting": 6, "level2": 8,
                    "level3": 6, "completed": 5, "blocked": 4, "stale": 7}
UNDUNNED_WEIGHTS = {"paid": 80, "not_due": 15, "cancelled": 5}  # methods without an active config


@dataclass
class OrderSpec:
    account: str
    method: str
    number: str
    customer_name: str
    customer_email: str
    language: str
    total: Decimal
    currency: str
    age_days: int  # local days between the order date and today
    order_minute: int  # minute of the day the order came in
    reminder_days_ago: list[int] = field(default_factory=list)  # per level, oldest first
    paid_days_ago: int | None = None
    cancelled_days_ago: int | None = None
    blocked_reason: str = ""
    flagged_days_ago: int | None = None
    auto_cancelled: bool = False
    released: bool = False


@dataclass
class DemoResult:
    created: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # username -> password, only when (re)set now


def _level_days(method: str, account: str) -> tuple[int, int, int, int, int]:
    """(term, level 1, level 2, level 3, min gap) of the demo config of (account, method)."""
    cfg = {**{"level_1_days": 7, "level_2_days": 14, "level_3_days": 21, "min_days_between_reminders": 7},
           **CONFIGS.get((account, method), {})}
    term = next(m["payment_term_days"] for m in METHODS if m["code"] == method)
    return (term, cfg["level_1_days"], cfg["level_2_days"], cfg["level_3_days"], cfg["min_days_between_reminders"])


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
    term, l1, l2, l3, gap = _level_days(spec.method, spec.account)
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
        spec.blocked_reason = rng.choice(BLOCK_REASONS)
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
    else:  # pragma: no cover - a typo in GUARANTEED or the weights
        raise ValueError(f"unknown demo scenario {scenario!r}")


def _handle_stale_prepayment(rng: random.Random, spec: OrderSpec) -> None:
    """What the job would have done to an open prepayment order past cancel_after_days; a quarter
    is left for the next run, so that running the job shows a team notice."""
    cfg = CONFIGS.get((spec.account, spec.method), {})
    cancel_after = cfg.get("cancel_after_days")
    if (cancel_after is None or spec.paid_days_ago is not None or spec.cancelled_days_ago is not None
            or spec.blocked_reason or spec.age_days <= cancel_after + 1 or rng.random() < 0.25):
        return
    handled_days_ago = spec.age_days - cancel_after
    if cfg["cancellation_action"] == _FLAG:
        spec.flagged_days_ago = handled_days_ago
    else:
        spec.cancelled_days_ago = handled_days_ago
        spec.auto_cancelled = True
        spec.released = cfg["cancellation_action"] == _RELEASE
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


def order_specs() -> list[OrderSpec]:
    """All demo orders, the same on every call (random.Random(42))."""
    rng = random.Random(SEED)
    dunned = {key for key, cfg in CONFIGS.items() if cfg.get("is_active")}
    specs = []
    for account, mix in ORDER_MIX.items():
        account_language = next(a["language"] for a in ACCOUNTS if a["name"] == account)
        for i in range(mix["count"]):
            if i < len(GUARANTEED):
                method, scenario = GUARANTEED[i]
            else:
                method = _weighted(rng, mix["methods"])
                scenario = _weighted(rng, SCENARIO_WEIGHTS if (account, method) in dunned else UNDUNNED_WEIGHTS)
                if scenario == "stale" and method != "prepayment":
                    scenario = "level1"
            scenario, _plus, modifier = scenario.partition("+")
            english = modifier == "en" or (modifier == "" and rng.random() < mix["english"])
            language = "en" if english else "de"
            first, last = rng.choice(FIRST_NAMES[language]), rng.choice(LAST_NAMES[language])
            no_email = modifier == "noemail" or rng.random() < 0.06
            email = "" if no_email else (
                f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}".lower().translate(_ASCII))
            currency = "GBP" if account == "Amazon" and english and rng.random() < 0.3 else "EUR"
            spec = OrderSpec(
                account=account, method=method, number=_number(account, i, rng), customer_name=f"{first} {last}",
                customer_email=email, language="" if language == account_language else language,
                total=Decimal(rng.choice([rng.randint(5, 60), rng.randint(20, 250), rng.randint(100, 1500)]))
                + Decimal(rng.choice([0, 50, 90, 95, 99])) / 100,
                currency=currency, age_days=1, order_minute=rng.randint(7 * 60, 22 * 60),
            )
            _plan(rng, spec, scenario)
            if not email:  # nobody could have been reminded
                spec.reminder_days_ago = []
            if method == "prepayment":
                _handle_stale_prepayment(rng, spec)
            specs.append(spec)
    return specs


# --- writing --------------------------------------------------------------------------------------

def _get_or_create(model, created: dict[str, int], defaults: dict | None = None, **lookup):
    obj, was_created = model.objects.get_or_create(**lookup, defaults=defaults or {})
    created[model.__name__] = created.get(model.__name__, 0) + int(was_created)
    return obj


def _users(result: DemoResult, *, reset_passwords: bool, make_password: Callable[[], str]) -> dict[str, User]:
    group = Group.objects.get(name=BACK_OFFICE_GROUP)
    users = {}
    for username, superuser in (("support", True), ("backoffice", False)):
        user, was_created = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@beispiel-shop.example", "is_staff": True,
                                         "is_superuser": superuser,
                                         "first_name": "Support" if superuser else "Back office"})
        result.created["User"] = result.created.get("User", 0) + int(was_created)
        if not user.is_staff or user.is_superuser != superuser or not user.is_active:
            user.is_staff, user.is_superuser, user.is_active = True, superuser, True
            user.save(update_fields=["is_staff", "is_superuser", "is_active"])
        if was_created or reset_passwords:
            password = make_password()
            user.set_password(password)
            user.save(update_fields=["password"])
            result.passwords[username] = password
        if not superuser:
            user.groups.add(group)
        users[username] = user
    return users


def _at(today: datetime.date, days_ago: int, minute: int) -> datetime.datetime:
    return local_midnight(today - datetime.timedelta(days=days_ago)) + datetime.timedelta(minutes=minute)


def _orders(specs: list[OrderSpec], *, now: datetime.datetime, accounts: dict[str, SalesAccount],
            methods: dict[str, PaymentMethod], templates: dict[tuple[str, str], EmailTemplate],
            backoffice: User, result: DemoResult) -> None:
    today = local_today(now)
    existing = set(Order.objects.filter(sales_account__in=accounts.values()).values_list("sales_account_id", "number"))
    new = [s for s in specs if (accounts[s.account].id, s.number) not in existing]
    orders = []
    for s in new:
        ordered_at = _at(today, s.age_days, s.order_minute)
        reminder_times = [_at(today, d, 6 * 60 + 5 + level) for level, d in enumerate(s.reminder_days_ago, 1)]
        orders.append(Order(
            sales_account=accounts[s.account], payment_method=methods[s.method], number=s.number,
            customer_name=s.customer_name, customer_email=s.customer_email, language=s.language, total=s.total,
            currency=s.currency, ordered_at=ordered_at,
            paid_at=None if s.paid_days_ago is None else _at(today, s.paid_days_ago, 10 * 60 + s.order_minute % 300),
            cancelled_at=None if s.cancelled_days_ago is None else _at(today, s.cancelled_days_ago, 6 * 60 + 2),
            dunning_blocked=bool(s.blocked_reason), dunning_block_reason=s.blocked_reason,
            reminders_sent=len(reminder_times), last_reminder_at=reminder_times[-1] if reminder_times else None,
            flagged_for_cancellation_at=None if s.flagged_days_ago is None else _at(today, s.flagged_days_ago, 362),
            reservation_released_at=_at(today, s.cancelled_days_ago, 362) if s.released else None,
        ))
    Order.objects.bulk_create(orders, batch_size=500)
    result.created["Order"] = len(orders)

    compiled: dict[int, CompiledTemplate] = {}
    reminders: list[Reminder] = []
    events: list[OrderEvent] = []
    for s, order in zip(new, orders, strict=True):
        language = order.effective_language
        for level, days_ago in enumerate(s.reminder_days_ago, 1):
            sent_at = _at(today, days_ago, 6 * 60 + 5 + level)
            name = LEVEL_TEMPLATES[level]
            template = templates.get((name, language)) or templates[(name, "de")]
            if template.pk not in compiled:
                compiled[template.pk] = CompiledTemplate(template)
            rendered = compiled[template.pk].render(
                order_context(order, level=level, today=local_today(sent_at), language=language))
            automatic = (s.account, level) in AUTOMATIC
            reminders.append(Reminder(
                order=order, level=level, template=template, recipient=order.customer_email,
                trigger=Reminder.Trigger.AUTOMATIC if automatic else Reminder.Trigger.MANUAL,
                sent_by=None if automatic else backoffice, subject=rendered.subject, body=rendered.body,
                html_body=rendered.html_body, status=Reminder.Status.SENT, created_at=sent_at, sent_at=sent_at,
                status_changed_at=sent_at, message_id=f"<demo-{order.number}-{level}@beispiel-shop.example>",
            ))
            events.append(OrderEvent(order=order, action="reminder_sent", at=sent_at,
                                     user=None if automatic else backoffice,
                                     details={"level": level, "trigger": reminders[-1].trigger, "demo": True}))
        if order.flagged_for_cancellation_at:
            events.append(OrderEvent(order=order, action="auto_flag", at=order.flagged_for_cancellation_at,
                                     details={"rule": "cancel_after_days", "demo": True}))
        if s.auto_cancelled:
            action = _RELEASE if s.released else _CANCEL
            events.append(OrderEvent(order=order, action=f"auto_{action}", at=order.cancelled_at,
                                     details={"rule": "cancel_after_days", "demo": True}))
    Reminder.objects.bulk_create(reminders, batch_size=500)
    OrderEvent.objects.bulk_create(events, batch_size=500)
    result.created["Reminder"] = len(reminders)


def demo_seed(*, now: datetime.datetime, reset_passwords: bool = False,
              make_password: Callable[[], str] = lambda: secrets.token_urlsafe(12)) -> DemoResult:
    """Create whatever of the demo data is missing (see the module docstring); returns the counts."""
    result = DemoResult()
    created = result.created
    with transaction.atomic():
        accounts = {a["name"]: _get_or_create(SalesAccount, created, name=a["name"],
                                              defaults={k: v for k, v in a.items() if k != "name"})
                    for a in ACCOUNTS}
        methods = {m["code"]: _get_or_create(PaymentMethod, created, code=m["code"],
                                             defaults={k: v for k, v in m.items() if k != "code"})
                   for m in METHODS}
        for (account, method), cfg in CONFIGS.items():
            _get_or_create(DunningConfig, created, sales_account=accounts[account], payment_method=methods[method],
                           defaults=cfg)
        templates = {(name, language): _get_or_create(EmailTemplate, created, name=name, language=language,
                                                      defaults=texts)
                     for (name, language), texts in TEMPLATES.items()}
        for account in accounts.values():
            for level, name in LEVEL_TEMPLATES.items():
                template = templates.get((name, account.language)) or templates[(name, "de")]
                _get_or_create(ReminderAssignment, created, sales_account=account, level=level,
                               defaults={"template": template,
                                         "send_automatically": (account.name, level) in AUTOMATIC})
        DunningAutomation.load()
        users = _users(result, reset_passwords=reset_passwords, make_password=make_password)
        _orders(order_specs(), now=now, accounts=accounts, methods=methods, templates=templates,
                backoffice=users["backoffice"], result=result)
    for model in (SalesAccount, PaymentMethod, DunningConfig, EmailTemplate, ReminderAssignment, Order, Reminder):
        result.totals[model.__name__] = model.objects.count()
    result.totals["User"] = User.objects.filter(username__in=["support", "backoffice"]).count()
    return result
