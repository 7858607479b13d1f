from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class Language(models.TextChoices):
    GERMAN = "de", _("German")
    ENGLISH = "en", _("English")


def validate_iban(value: str) -> None:
    """An IBAN with a valid country, length and check digits (schwifty), spaces allowed."""
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        IBAN(value)
    except SchwiftyException as exc:
        raise ValidationError(_("Not a valid IBAN: %(problem)s") % {"problem": exc}) from None


def validate_bic(value: str) -> None:
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    try:
        BIC(value)
    except SchwiftyException as exc:
        raise ValidationError(_("Not a valid BIC: %(problem)s") % {"problem": exc}) from None


class SalesAccount(models.Model):
    """A channel orders come in through (web shop, eBay, Amazon, ...)."""

    class Channel(models.TextChoices):
        WEBSHOP = "webshop", _("Web shop")
        EBAY = "ebay", _("eBay")
        AMAZON = "amazon", _("Amazon")
        OTHER = "other", _("Other")

    name = models.CharField(_("name"), max_length=100, unique=True)
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices, default=Channel.WEBSHOP)
    sender_email = models.EmailField(_("sender e-mail"), help_text=_("From address of reminders."))
    reply_to_email = models.EmailField(_("reply-to e-mail"), blank=True)
    team_email = models.EmailField(
        _("team e-mail"), blank=True, help_text=_("Where notices about flagged or cancelled orders go.")
    )
    language = models.CharField(
        _("language"),
        max_length=2,
        choices=Language.choices,
        default=Language.GERMAN,
        help_text=_("Default language of its e-mails."),
    )
    payment_instructions = models.TextField(
        _("payment instructions"),
        blank=True,
        help_text=_("Bank details or how to pay; available in templates as {{ payment_instructions }}."),
    )
    payment_tolerance = models.DecimalField(
        _("payment tolerance"), max_digits=12, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("An order counts as paid when bank payments reach its total less this amount."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    # The creditor on letters and in the payment QR code (docs/rules/letters.md).
    company_name = models.CharField(
        _("company name"), max_length=200, blank=True,
        help_text=_("The seller as it appears on letters (blank: the sales account's name)."))
    street = models.CharField(_("street and number"), max_length=200, blank=True)
    postcode = models.CharField(_("postcode"), max_length=20, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    country = models.CharField(_("country"), max_length=2, default="DE",
                               validators=[RegexValidator(r"^[A-Z]{2}$", _("Two capital letters (ISO 3166)."))],
                               help_text=_("ISO 3166 code, e.g. DE."))
    iban = models.CharField(_("IBAN"), max_length=42, blank=True, validators=[validate_iban],
                            help_text=_("Account for payments: on letters and in the payment QR code."))
    bic = models.CharField(_("BIC"), max_length=11, blank=True, validators=[validate_bic],
                           help_text=_("Optional."))
    account_holder = models.CharField(_("account holder"), max_length=70, blank=True,
                                      help_text=_("Name of the account holder (at most 70 characters, as the "
                                                  "payment QR code allows)."))
    logo = models.ImageField(_("logo"), upload_to="logos/", blank=True,
                             validators=[FileExtensionValidator(["png", "jpg", "jpeg"])],
                             help_text=_("PNG or JPEG, printed at the top right of letters."))
    legal_details = models.TextField(
        _("legal details"), blank=True,
        help_text=_("Letter footer: managing directors, commercial register, VAT ID, phone, ..."))

    class Meta:
        verbose_name = _("sales account")
        verbose_name_plural = _("sales accounts")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        # stored as the bank prints it on paper: upper case, in groups of four
        if self.iban:
            self.iban = " ".join(self.iban.replace(" ", "").upper()[i:i + 4]
                                 for i in range(0, len(self.iban.replace(" ", "")), 4))
        self.bic = self.bic.replace(" ", "").upper()

    @property
    def letter_name(self) -> str:
        return self.company_name or self.name

    def letter_problems(self) -> list[str]:
        """What the account lacks for letters and the payment QR code (docs/rules/letters.md)."""
        problems = []
        if not (self.street and self.postcode and self.city):
            problems.append(str(_("the seller's postal address (sales account)")))
        if not self.iban:
            problems.append(str(_("the IBAN (sales account)")))
        if not self.account_holder:
            problems.append(str(_("the account holder (sales account)")))
        return problems


class ApiKey(models.Model):
    """A key of the API (docs/rules/api-and-webhooks.md): it acts on its sales account's orders only.
    Only the SHA-256 of the key is stored; the key itself is shown once, when it is created
    (accounts.services.api_key_create). `prefix` (the first characters) tells keys apart in lists."""

    PREFIX = "mwk_"

    sales_account = models.ForeignKey(SalesAccount, on_delete=models.CASCADE, related_name="api_keys",
                                      verbose_name=_("sales account"))
    name = models.CharField(_("name"), max_length=100, blank=True, help_text=_("What uses the key, e.g. \"ERP\"."))
    prefix = models.CharField(_("key prefix"), max_length=16, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["sales_account", "-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}... ({self.sales_account})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
