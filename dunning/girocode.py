"""The payment QR code ("GiroCode", EPC069-12 version 002) of a reminder (docs/rules/letters.md).

A banking app that scans it fills in a SEPA credit transfer: the creditor (the sales account's
account holder), the IBAN, the BIC when given (optional in version 002), the amount (the total
due of the reminder's frozen claim) and, as the unstructured remittance text, the order number,
which the bank-statement matching (payments.matching) finds again as a whole token.

The payload is twelve lines joined by LF, character set 1 (UTF-8), identification "SCT", encoded
with error correction level M (the standard asks for it) by segno. EPC allows euro amounts from
0.01 to 999,999,999.99 only: for any other currency or amount there is no code, and the caller
says why (`NoGiroCode`). The payload may be at most 331 bytes; the fields' limits keep it there
(name 70, remittance text 140)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal

import segno
from django.utils.translation import gettext as _

EPC_MIN = Decimal("0.01")
EPC_MAX = Decimal("999999999.99")
MAX_NAME = 70
MAX_TEXT = 140
MAX_PAYLOAD_BYTES = 331


class NoGiroCode(ValueError):
    """No code can be made; the message (in the active language) says why."""


@dataclass(frozen=True)
class GiroCode:
    name: str
    iban: str
    bic: str
    amount: Decimal
    text: str

    @property
    def payload(self) -> str:
        """The EPC069-12 payload, version 002, UTF-8, credit transfer."""
        lines = ["BCD", "002", "1", "SCT", self.bic, self.name, self.iban, f"EUR{self.amount:.2f}",
                 "", "", self.text, ""]
        return "\n".join(lines).rstrip("\n")

    def qr(self) -> segno.QRCode:
        return segno.make_qr(self.payload, error="m", boost_error=False, encoding="utf-8")

    def png(self, *, scale: int = 4) -> bytes:
        out = io.BytesIO()
        self.qr().save(out, kind="png", scale=scale, border=4)
        return out.getvalue()

    def png_data_uri(self) -> str:
        """For letters: two pixels a module, scaled up by the layout without smoothing
        (`image-rendering: pixelated`), so it prints sharp. An SVG would cost a letter some 25 ms
        of path parsing in WeasyPrint; this PNG costs a fraction of a millisecond."""
        return self.qr().png_data_uri(scale=2, border=4)


def _one_line(value: str) -> str:
    return " ".join(value.split())


def girocode(*, account_holder: str, iban: str, bic: str, amount: Decimal, currency: str,
             reference: str) -> GiroCode:
    """The code of a payment of `amount` `currency` to the account, referencing `reference` (the
    order number). Raises NoGiroCode when there can be none."""
    if currency != "EUR":
        raise NoGiroCode(_("No payment QR code: the GiroCode (EPC) allows euro amounts only, this claim is in "
                           "%(currency)s.") % {"currency": currency})
    if amount < EPC_MIN:
        raise NoGiroCode(_("No payment QR code: nothing is due."))
    if amount > EPC_MAX:
        raise NoGiroCode(_("No payment QR code: the GiroCode (EPC) allows at most 999,999,999.99 EUR."))
    iban = iban.replace(" ", "").upper()
    if not iban:
        raise NoGiroCode(_("No payment QR code: the sales account has no IBAN."))
    name = _one_line(account_holder)[:MAX_NAME]
    if not name:
        raise NoGiroCode(_("No payment QR code: the sales account has no account holder."))
    code = GiroCode(name=name, iban=iban, bic=bic.replace(" ", "").upper(), amount=amount,
                    text=_one_line(reference)[:MAX_TEXT])
    if len(code.payload.encode()) > MAX_PAYLOAD_BYTES:  # pragma: no cover - the field limits keep it below
        raise NoGiroCode(_("No payment QR code: the data is too long."))
    return code
