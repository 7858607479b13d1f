"""The static content of the demo: sales accounts, payment methods, dunning configs, reminder
templates and their assignment, users, customer names and the order mix the planner draws from.

Plain data only (strings, numbers, Decimals): no Django model is imported here, so the planner that
reads it stays free of Django and the database. Choice values are spelled as their stored strings
("webshop", "cancel_and_release_reservation"); tests/demo checks them against the models' choices.

The reminder texts are staff-written Jinja2 templates and live as files in
`templates/demo/reminders/`, one per part: `level-<n>.<language>.subject.txt`, `.body.txt` and,
optionally, `.body.html` (the subject file holds one line; its final newline is not part of it)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

SEED = 42
BACK_OFFICE_GROUP = "Back office"
EMAIL_DOMAIN = "beispiel-shop.example"

# --- sales accounts, payment methods, dunning configs ---------------------------------------------

PAYMENT_INSTRUCTIONS = {
    "de": "Beispiel-Shop GmbH\nIBAN: DE02 1203 0000 0000 2020 51\nBIC: BYLADEM1001\nDeutsche Kreditbank Berlin",
    "en": "Beispiel-Shop GmbH\nIBAN: DE02 1203 0000 0000 2020 51\nBIC (SWIFT): BYLADEM1001\nDeutsche Kreditbank",
}

# The creditor of letters and of the payment QR code (one company behind all three channels).
CREDITOR = {"company_name": "Beispiel-Shop GmbH", "street": "Friedrichstraße 123", "postcode": "10117",
            "city": "Berlin", "country": "DE", "iban": "DE02 1203 0000 0000 2020 51", "bic": "BYLADEM1001",
            "account_holder": "Beispiel-Shop GmbH",
            "legal_details": "Geschäftsführerin: Erika Beispiel\nAmtsgericht Charlottenburg HRB 123456 B\n"
                             "USt-IdNr. DE123456789 · Tel. 030 1234567"}

# Customers' postal addresses, picked by the order number (no random numbers are drawn for them, so
# the rest of the plan stays as it was).
STREETS = ["Lindenallee", "Hauptstraße", "Bahnhofstraße", "Schillerstraße", "Gartenweg", "Am Markt", "Kirchgasse",
           "Rosenweg", "Bergstraße", "Mühlenweg"]
PLACES = [("80331", "München"), ("50667", "Köln"), ("20095", "Hamburg"), ("70173", "Stuttgart"),
          ("04109", "Leipzig"), ("90402", "Nürnberg"), ("28195", "Bremen"), ("01067", "Dresden")]
PLACES_EN = [("SW1A 1AA", "London", "GB"), ("D02 X285", "Dublin", "IE"), ("1010", "Wien", "AT")]

ACCOUNTS = [
    {"name": "Webshop", "channel": "webshop", "language": "de",
     "sender_email": "buchhaltung@beispiel-shop.example", "reply_to_email": "service@beispiel-shop.example",
     "team_email": "team@beispiel-shop.example", "payment_instructions": PAYMENT_INSTRUCTIONS["de"], **CREDITOR},
    {"name": "eBay", "channel": "ebay", "language": "de",
     "sender_email": "ebay@beispiel-shop.example", "reply_to_email": "service@beispiel-shop.example",
     "team_email": "team-ebay@beispiel-shop.example", "payment_instructions": PAYMENT_INSTRUCTIONS["de"], **CREDITOR},
    {"name": "Amazon", "channel": "amazon", "language": "en",
     "sender_email": "amazon@beispiel-shop.example", "reply_to_email": "service@beispiel-shop.example",
     "team_email": "team-amazon@beispiel-shop.example", "payment_instructions": PAYMENT_INSTRUCTIONS["en"], **CREDITOR},
]

METHODS = [
    {"code": "prepayment", "name": "Vorkasse", "is_prepayment": True, "payment_term_days": 0},
    {"code": "invoice", "name": "Rechnung", "is_prepayment": False, "payment_term_days": 14},
    {"code": "paypal", "name": "PayPal", "is_prepayment": False, "payment_term_days": 0},
    {"code": "cash_on_delivery", "name": "Nachnahme", "is_prepayment": False, "payment_term_days": 0},
]

# DunningConfig.CancellationAction values
FLAG = "flag"
CANCEL = "cancel"
CANCEL_AND_RELEASE = "cancel_and_release_reservation"

# The DunningConfig field defaults: what a config leaves out.
CONFIG_DEFAULTS = {"is_active": False, "level_1_days": 7, "level_2_days": 14, "level_3_days": 21,
                   "min_days_between_reminders": 7, "minimum_amount": Decimal("0"), "cancel_after_days": None,
                   "cancellation_action": FLAG, "level_1_fee": Decimal("0"), "level_2_fee": Decimal("0"),
                   "level_3_fee": Decimal("0")}
# Invoice configs charge 2.50 EUR at the second and the third reminder (the first is free): what
# courts accept for a reminder's paper and postage (docs/rules/claim.md), so the demo's level-2 and
# level-3 e-mails, letters and the overview's "total due" show a claim beyond the order total.
_INVOICE = {"is_active": True, "level_1_days": 7, "level_2_days": 14, "level_3_days": 21,
            "min_days_between_reminders": 7, "level_2_fee": Decimal("2.50"), "level_3_fee": Decimal("2.50")}
_PREPAYMENT = {"is_active": True, "level_1_days": 3, "level_2_days": 10, "level_3_days": 17,
               "min_days_between_reminders": 7}
CONFIGS: dict[tuple[str, str], dict] = {
    ("Webshop", "invoice"): _INVOICE,
    ("Webshop", "prepayment"): {**_PREPAYMENT, "cancel_after_days": 21, "cancellation_action": FLAG},
    ("Webshop", "paypal"): {**_INVOICE, "is_active": False},  # inactive: shows what "not dunned" looks like
    ("eBay", "invoice"): {**_INVOICE, "minimum_amount": Decimal("5.00")},
    ("eBay", "prepayment"): {**_PREPAYMENT, "minimum_amount": Decimal("5.00"), "cancel_after_days": 21,
                             "cancellation_action": CANCEL},
    ("Amazon", "invoice"): {**_INVOICE, "level_1_days": 5, "level_2_days": 12, "level_3_days": 19},
    ("Amazon", "prepayment"): {**_PREPAYMENT, "cancel_after_days": 28, "cancellation_action": CANCEL_AND_RELEASE},
}


def config(account: str, method: str) -> dict:
    """The demo config of (account, method) with the defaults filled in (inactive if there is none)."""
    return {**CONFIG_DEFAULTS, **CONFIGS.get((account, method), {})}


def payment_term_days(method: str) -> int:
    return next(m["payment_term_days"] for m in METHODS if m["code"] == method)


def account_language(account: str) -> str:
    return next(a["language"] for a in ACCOUNTS if a["name"] == account)


# --- reminder templates -------------------------------------------------------------------------

LANGUAGES = ("de", "en")
LEVEL_TEMPLATES = {1: "Zahlungserinnerung", 2: "1. Mahnung", 3: "Letzte Mahnung"}  # level -> template name
AUTOMATIC = {("Webshop", 1), ("Webshop", 2)}  # (account, level) sent by the job; the rest by hand
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates" / "demo" / "reminders"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_templates(directory: Path = TEMPLATE_DIR) -> dict[tuple[str, str], dict[str, str]]:
    """(template name, language) -> {"subject", "body"[, "html_body"]}, read from the files."""
    templates = {}
    for level, name in LEVEL_TEMPLATES.items():
        for language in LANGUAGES:
            stem = f"level-{level}.{language}"
            texts = {"subject": _read(directory / f"{stem}.subject.txt").rstrip("\n"),
                     "body": _read(directory / f"{stem}.body.txt")}
            html = directory / f"{stem}.body.html"
            if html.exists():
                texts["html_body"] = _read(html)
            templates[(name, language)] = texts
    return templates


TEMPLATES = load_templates()

# --- users ----------------------------------------------------------------------------------------

# username, superuser (else: staff in the Back office group), first name
USERS = [("support", True, "Support"), ("backoffice", False, "Back office")]

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
MAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example", "post.example"]
BLOCK_REASONS = [
    "Kunde hat Zahlung per Telefon zugesagt",
    "Reklamation offen (Ware beschädigt)",
    "Ratenzahlung vereinbart",
    "Rücksendung unterwegs",
    "Zahlung laut Kunde erfolgt, Kontoauszug angefordert",
]

# --- the order mix --------------------------------------------------------------------------------

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
