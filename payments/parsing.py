"""Reading bank statements: camt.053 (ISO 20022, versions 001.02 to 001.08, also several in a ZIP)
and MT940 (SWIFT, with the German structured `:86:` field). No database here: the parsers turn
bytes into `Entry` values, and every problem into a `StatementError` naming the file and, where
known, the entry.

camt.053 is streamed with lxml's `iterparse` (each `Ntry` is read and then freed, so memory stays
flat at 100,000 entries) on a parser with entity resolution, DTD loading and network access off and
`huge_tree` off. A document type declaration is refused before parsing starts: a bank statement
never has one, and refusing it closes the door on entity expansion ("billion laughs") and external
entities (XXE) whatever the parser would do with them. MT940 goes through the `mt-940` library
(BSD-3-Clause); its `:86:` post-processor splits the German `?20`-`?29` purpose lines, `SVWZ+`,
`EREF+`, `?31` IBAN and `?32`/`?33` name. camt.052 and camt.054 are refused with a clear line
(intraday reports and notifications would count the same money twice next to the statement)."""

from __future__ import annotations

import datetime
import hashlib
import io
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from lxml import etree

CAMT_NS = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(?P<msg>\d{3})\.001\.(?P<ver>\d{2})$")
CAMT_VERSIONS = {"02", "03", "04", "05", "06", "07", "08"}
# ISO bank transaction sub-family codes of returns and reversals of credits
RETURN_SUBFAMILIES = {"RRTN", "RPCR", "ARET", "AREV", "RVSL"}
MAX_PROLOG = 64 * 1024
MAX_ZIP_MEMBERS = 500
MAX_MEMBER_BYTES = 1024 * 1024 * 1024  # uncompressed, per member
MAX_ZIP_RATIO = 200  # uncompressed / compressed: beyond this a member is a zip bomb, not a statement
MAX_MT940_BYTES = 50 * 1024 * 1024
AMOUNT = re.compile(r"^\d{1,10}(\.\d{1,5})?$")


class StatementError(Exception):
    """A file that cannot be read. `str()` is the one line the command prints, in the active
    language: `problem` is a translatable text (gettext_lazy) with %(name)s placeholders filled
    from `params` when the line is made, so the upload page says it in German and the command
    (which runs without translations) in English."""

    def __init__(self, file_name: str, problem: str, *, entry: int | None = None, **params):
        self.file_name, self.problem, self.entry, self.params = file_name, problem, entry, params
        super().__init__(file_name, problem, entry)

    def __str__(self) -> str:
        problem = str(self.problem) % self.params if self.params else str(self.problem)
        if self.entry:
            line = gettext("%(file)s: entry %(entry)d: %(problem)s") % {
                "file": self.file_name, "entry": self.entry, "problem": problem}
        else:
            line = f"{self.file_name}: {problem}"
        return _LINE_BREAKS.sub(" ", line).strip()  # one line, whatever lxml's message or the file name holds


_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x85\u2028\u2029]+\s*")


@dataclass
class Entry:
    index: int  # 1-based position in its file (for messages)
    credit: bool  # money in
    booked: bool  # status BOOK (camt); MT940 entries are booked
    is_return: bool
    amount: Decimal  # > 0
    currency: str
    booked_on: datetime.date
    reference: str = ""  # the remittance texts, joined with " | "
    end_to_end_id: str = ""
    counterparty_name: str = ""
    counterparty_iban: str = ""
    source_id: str = ""


@dataclass
class Header:
    account_iban: str = ""
    period_from: datetime.date | None = None
    period_to: datetime.date | None = None


@dataclass
class Source:
    """One statement file (a ZIP member is one too): its name, format and a way to read it again
    (validation reads every file once, the import a second time)."""

    name: str
    format: str  # "camt053" / "mt940"
    open: Callable[[], BinaryIO]
    sha256: str = ""
    header: Header = field(default_factory=Header)

    def entries(self) -> Iterator[Entry]:
        parse = camt_entries if self.format == "camt053" else mt940_entries
        return _with_source_ids(self, parse(self))


# --- sources: what a file is ------------------------------------------------------------------

def sources_of(name: str, opener: Callable[[], BinaryIO]) -> list[Source]:
    """The statements in a file: itself (camt.053 XML or MT940), or the members of a ZIP. Raises
    StatementError for anything else, a corrupt ZIP included."""
    with opener() as f:
        head = f.read(8)
    if head.startswith(b"PK"):
        return _zip_sources(name, opener)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        return [_hashed(Source(name, "camt053", opener))]
    if stripped.startswith((b":20:", b"{1:", b":")) or head.startswith((b"\r\n:20:", b"\n:20:")):
        return [_hashed(Source(name, "mt940", opener))]
    if not head:
        raise StatementError(name, _("the file is empty"))
    raise StatementError(name, _("not a camt.053 XML file, a ZIP of them or an MT940 file"))


def _hashed(source: Source) -> Source:
    digest = hashlib.sha256()
    with source.open() as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    source.sha256 = digest.hexdigest()
    return source


# What a corrupt or unusual ZIP raises while it is opened or read: a bad header, a truncated or
# damaged deflate stream (zlib.error), a compression method or ZIP version Python cannot unpack
# (NotImplementedError).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, zlib.error,
               NotImplementedError)


def _zip_sources(name: str, opener: Callable[[], BinaryIO]) -> list[Source]:
    try:
        with opener() as f, zipfile.ZipFile(f) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except _ZIP_ERRORS as exc:
        raise StatementError(name, _("not a readable ZIP file (truncated or corrupt: %(error)s)"), error=exc) from None
    if not infos:
        raise StatementError(name, _("the ZIP file holds no statements"))
    if len(infos) > MAX_ZIP_MEMBERS:
        raise StatementError(name, _("the ZIP file holds more than %(n)d files"), n=MAX_ZIP_MEMBERS)
    sources = []
    for info in infos:
        member = f"{name}/{info.filename}"
        if info.flag_bits & 0x1:
            raise StatementError(member, _("encrypted ZIP members are not supported"))
        if info.file_size > MAX_MEMBER_BYTES or info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1024):
            raise StatementError(member, _("unpacks to an implausible size (a ZIP bomb?)"))

        def open_member(info=info) -> BinaryIO:
            outer = opener()
            try:
                archive = zipfile.ZipFile(outer)
                return _Closing(archive.open(info), archive, outer)
            except Exception:
                outer.close()
                raise

        try:
            with open_member() as f:
                head = f.read(8).lstrip(b"\xef\xbb\xbf \t\r\n")
        except _ZIP_ERRORS as exc:
            raise StatementError(member, _("cannot be unpacked (corrupt ZIP: %(error)s)"), error=exc) from None
        if not head.startswith(b"<"):
            raise StatementError(member, _("a ZIP may hold camt.053 XML files only"))
        try:
            sources.append(_hashed(Source(member, "camt053", open_member)))  # reads it whole: a CRC error is here
        except _ZIP_ERRORS as exc:
            raise StatementError(member, _("cannot be unpacked (corrupt ZIP: %(error)s)"), error=exc) from None
    return sources


class _Closing(io.RawIOBase):
    """A ZIP member's stream that closes its archive and the outer file with it."""

    def __init__(self, inner, *others):
        self.inner, self.others = inner, others

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.inner.read(n)

    def readinto(self, b) -> int:
        data = self.inner.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.inner.close()
            for other in self.others:
                other.close()
        super().close()


# --- camt.053 ----------------------------------------------------------------------------------

def _prolog(source: Source) -> str:
    """The text before and including the root's start tag. A DOCTYPE can only come before the root
    element; the root's namespace says which message and version this is."""
    with source.open() as f:
        prolog = f.read(MAX_PROLOG)
    text = prolog.decode("utf-8", "replace")
    root = re.search(r"<[A-Za-z_][^>]*>", text)
    before = text if root is None else text[: root.start()]
    if "<!DOCTYPE" in before.upper() or "<!ENTITY" in before.upper():
        raise StatementError(source.name, _("XML with a document type declaration (DTD) or entities is refused"))
    if root is None:
        raise StatementError(source.name, _("not XML: no root element in the first 64 KB"))
    return root.group()


def _parser_args() -> dict:
    return {"resolve_entities": False, "no_network": True, "load_dtd": False, "dtd_validation": False,
            "huge_tree": False, "remove_comments": True, "remove_pis": True}


def camt_entries(source: Source) -> Iterator[Entry]:
    """Every `Ntry` of every `Stmt` (a batch entry with several `TxDtls`, each with its amount,
    gives one Entry per transaction). Fills `source.header` on the way. Only the end events of
    `Ntry`, `Acct` and `FrToDt` reach Python (lxml filters by tag), which keeps 100,000 entries
    to a few seconds."""
    root_tag = _prolog(source)
    declared = re.search(r"""\sxmlns\s*=\s*["']([^"']*)["']""", root_tag)
    header = source.header = Header()
    index = 0
    ns = None
    with source.open() as f:
        if declared:  # the namespace is known before parsing: let lxml filter the events
            ns = _camt_namespace(source.name, declared.group(1))
            p = f"{{{ns}}}"
            context = etree.iterparse(f, events=("end",), tag=(f"{p}Ntry", f"{p}Acct", f"{p}FrToDt"),
                                      **_parser_args())
        else:
            context = etree.iterparse(f, events=("start", "end"), **_parser_args())
        try:
            for event, el in context:
                if ns is None:  # the root element, no default namespace declared in its tag
                    ns = _camt_namespace(source.name, etree.QName(el).namespace or "")
                    continue
                if event != "end":
                    continue
                tag = el.tag
                if tag == f"{{{ns}}}Ntry":
                    index += 1
                    yield from _camt_entry(source.name, el, f"{{{ns}}}", index)
                    el.clear()
                    while el.getprevious() is not None:
                        del el.getparent()[0]
                elif tag == f"{{{ns}}}Acct" and el.getparent().tag == f"{{{ns}}}Stmt":
                    iban = el.findtext(f"{{{ns}}}Id/{{{ns}}}IBAN")
                    if iban and not header.account_iban:
                        header.account_iban = iban.strip().replace(" ", "")
                elif tag == f"{{{ns}}}FrToDt" and el.getparent().tag == f"{{{ns}}}Stmt":
                    fr = _date(el.findtext(f"{{{ns}}}FrDtTm"))
                    to = _date(el.findtext(f"{{{ns}}}ToDtTm"))
                    if fr:
                        header.period_from = min(filter(None, [header.period_from, fr]))
                    if to:
                        header.period_to = max(filter(None, [header.period_to, to]))
        except etree.XMLSyntaxError as exc:
            raise StatementError(source.name, _("not well-formed XML: %(error)s"), entry=index + 1 if ns else None,
                                 error=exc.msg) \
                from None
    if ns is None:
        raise StatementError(source.name, _("not XML: no root element"))


def _camt_namespace(name: str, ns: str) -> str:
    match = CAMT_NS.match(ns)
    if not match:
        raise StatementError(name, _("not a camt.053 statement (root namespace %(ns)s)"), ns=repr(ns) if ns else "-")
    msg, ver = match["msg"], match["ver"]
    if msg in ("052", "054"):
        raise StatementError(name, _("camt.%(msg)s (an intraday report or notification) is not supported; "
                                     "import the camt.053 day-end statement"), msg=msg)
    if msg != "053":
        raise StatementError(name, _("camt.%(msg)s is not a bank statement (camt.053)"), msg=msg)
    if ver not in CAMT_VERSIONS:
        raise StatementError(name, _("camt.053.001.%(ver)s is not supported (001.02 to 001.08 are)"), ver=ver)
    return ns


def _date(text: str | None) -> datetime.date | None:
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _amount(name: str, index: int, el, p: str) -> tuple[Decimal, str]:
    if el is None or not (el.text or "").strip():
        raise StatementError(name, _("the amount is missing"), entry=index)
    text = el.text.strip()
    if not AMOUNT.match(text):
        raise StatementError(name, _("invalid amount %(amount)s (a dot is the decimal separator)"), entry=index,
                             amount=repr(text[:30]))
    currency = (el.get("Ccy") or "").strip()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise StatementError(name, _("invalid currency %(currency)s"), entry=index, currency=repr(currency[:10]))
    try:
        return Decimal(text), currency
    except InvalidOperation:
        raise StatementError(name, _("invalid amount %(amount)s"), entry=index, amount=repr(text[:30])) from None


class _Fields:
    """The elements below one element by their path of local names ("Sts/Cd"), found in ONE walk
    of its subtree: a path lookup per field (`findtext("{ns}Sts/{ns}Cd")`, about 25 per entry)
    was most of the parser's time. `skip` leaves one child subtree out (an entry's NtryDtls:
    each transaction is read on its own)."""

    __slots__ = ("found",)

    def __init__(self, el, plen: int, skip: str = ""):
        found: dict[str, list] = {}

        def walk(node, prefix: str) -> None:
            for child in node:
                tag = child.tag
                if not isinstance(tag, str):  # an entity reference (entities are never resolved)
                    continue
                path = prefix + tag[plen:]
                if path == skip:
                    continue
                found.setdefault(path, []).append(child)
                if len(child):
                    walk(child, path + "/")

        walk(el, "")
        self.found = found

    def el(self, path: str):
        els = self.found.get(path)
        return els[0] if els else None

    def text(self, path: str) -> str:
        """The first element's text, stripped ("" when there is none), as `findtext(...) or ""`."""
        els = self.found.get(path)
        return (els[0].text or "").strip() if els else ""

    def texts(self, path: str) -> list[str]:
        return [t.strip() for t in (x.text for x in self.found.get(path, ())) if t and t.strip()]


def _camt_entry(name: str, ntry, p: str, index: int) -> Iterator[Entry]:
    plen = len(p)
    f = _Fields(ntry, plen, skip="NtryDtls")
    amount, currency = _amount(name, index, f.el("Amt"), p)
    side = f.text("CdtDbtInd")
    if side not in ("CRDT", "DBIT"):
        raise StatementError(name, _("credit/debit indicator %(side)s is neither CRDT nor DBIT"), entry=index,
                             side=repr(side[:10]))
    status = f.text("Sts/Cd") or f.text("Sts")
    booked_on = _date(f.text("BookgDt/Dt") or f.text("BookgDt/DtTm")) or _date(
        f.text("ValDt/Dt") or f.text("ValDt/DtTm"))
    if booked_on is None:
        raise StatementError(name, _("the booking date is missing or invalid"), entry=index)
    reversal = f.text("RvslInd").lower() in ("true", "1")
    codes = f.texts("BkTxCd/Domn/Fmly/SubFmlyCd") + f.texts("BkTxCd/Prtry/Cd")
    is_return = reversal or any(c in RETURN_SUBFAMILIES or re.search(r"(^|\D)159(\D|$)", c) for c in codes)
    entry_ref = f.text("AcctSvcrRef")
    extra = f.texts("AddtlNtryInf")
    txs = [_Fields(tx, plen) for tx in ntry.iterfind(f"{p}NtryDtls/{p}TxDtls")]
    split = len(txs) > 1 and all(_tx_amount(tx) is not None for tx in txs)
    for n, tx in enumerate(txs if split else [txs[0] if txs else None], start=1):
        tx_amount, tx_currency = amount, currency
        if split:
            tx_amount, tx_currency = _amount(name, index, _tx_amount(tx), p)
        texts, e2e, cp_name, cp_iban, tx_ref = [], "", "", "", ""
        if tx is not None:
            e2e = tx.text("Refs/EndToEndId")
            if e2e.upper() == "NOTPROVIDED":
                e2e = ""
            tx_ref = tx.text("Refs/AcctSvcrRef")
            texts = tx.texts("RmtInf/Ustrd") + tx.texts("RmtInf/Strd/CdtrRefInf/Ref") + tx.texts("AddtlTxInf")
            # the other party: the debtor of a credit, the creditor of a debit (001.08 wraps it in Pty)
            party = "Dbtr" if side == "CRDT" else "Cdtr"
            cp_name = tx.text(f"RltdPties/{party}/Nm") or tx.text(f"RltdPties/{party}/Pty/Nm")
            cp_iban = tx.text(f"RltdPties/{party}Acct/Id/IBAN").replace(" ", "")
            tx_codes = tx.texts("BkTxCd/Domn/Fmly/SubFmlyCd")
            if tx.el("RtrInf") is not None or any(c in RETURN_SUBFAMILIES for c in tx_codes):
                is_return = True
        if e2e:
            texts.append(e2e)
        texts += extra
        ref = tx_ref or (f"{entry_ref}/{n}" if entry_ref and split else entry_ref)
        yield Entry(index=index, credit=side == "CRDT", booked=status in ("BOOK", ""), is_return=is_return,
                    amount=tx_amount, currency=tx_currency, booked_on=booked_on,
                    reference=" | ".join(dict.fromkeys(texts)), end_to_end_id=e2e[:64],
                    counterparty_name=cp_name[:140], counterparty_iban=cp_iban[:34],
                    source_id=ref)


def _tx_amount(tx: _Fields):
    return tx.el("Amt") if tx.el("Amt") is not None else tx.el("AmtDtls/TxAmt/Amt")


# --- MT940 ------------------------------------------------------------------------------------

def mt940_entries(source: Source) -> Iterator[Entry]:
    import mt940  # imported here: only MT940 imports pay for it

    with source.open() as f:
        data = f.read(MAX_MT940_BYTES + 1)
    if len(data) > MAX_MT940_BYTES:
        raise StatementError(source.name, _("MT940 files over 50 MB are not supported"))
    # Old systems pad a file with NUL bytes or end it with Ctrl-Z; anywhere else a NUL means a
    # damaged or binary file (and no database text can hold it).
    text = _decode(data).lstrip("\ufeff").rstrip("\x00\x1a \t\r\n")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise StatementError(source.name, _("line %(line)d holds a NUL byte: the file is damaged or not text"),
                             line=line)
    _check_mt940_lines(source.name, text)
    transactions = mt940.models.Transactions(options=mt940.Options(applicant_iban=True))
    try:
        transactions.parse(text)
    except Exception as exc:  # the library raises plain ValueErrors and friends on broken fields
        raise StatementError(source.name, _("not a readable MT940 file: %(error)s"), error=exc) from None
    account = (transactions.data.get("account_identification") or "").replace(" ", "")
    header = source.header = Header(account_iban=account[:34])
    for index, tx in enumerate(transactions, start=1):
        d = tx.data
        status = d.get("status") or ""
        amount = getattr(d.get("amount"), "amount", None)
        if amount is None:
            raise StatementError(source.name, _("the :61: line has no amount"), entry=index)
        booked_on = d.get("entry_date") or d.get("date")
        booked_on = datetime.date(booked_on.year, booked_on.month, booked_on.day)
        header.period_from = min(filter(None, [header.period_from, booked_on]))
        header.period_to = max(filter(None, [header.period_to, booked_on]))
        code = (d.get("transaction_code") or "").strip()
        words = " ".join(filter(None, [d.get("posting_text"), d.get("purpose"), d.get("transaction_details")])).upper()
        is_return = status in ("RC", "RD") or code == "159" or "RETOURE" in words
        e2e = (d.get("end_to_end_reference") or "").strip()
        if e2e.upper() == "NOTPROVIDED":
            e2e = ""
        texts = [d.get("purpose"), d.get("additional_purpose"), e2e, d.get("customer_reference")
                 if d.get("customer_reference") not in ("NONREF", None) else None,
                 d.get("transaction_details")]
        bank_ref = (d.get("bank_reference") or "").strip()
        yield Entry(index=index, credit=status in ("C", "RD"), booked=True, is_return=is_return,
                    amount=abs(Decimal(amount)), currency=(d.get("currency") or "").strip()[:3],
                    booked_on=booked_on,
                    reference=" | ".join(dict.fromkeys(t.strip() for t in texts if t and t.strip())),
                    end_to_end_id=e2e[:64], counterparty_name=(d.get("applicant_name") or "").strip()[:140],
                    counterparty_iban=(d.get("applicant_iban") or "").replace(" ", "")[:34],
                    source_id=bank_ref if bank_ref and bank_ref.upper() != "NONREF" else "")


def _decode(data: bytes) -> str:
    """UTF-8, else Windows-1252 (what German banks write), else ISO 8859-1: a file with one of the five
    bytes Windows-1252 leaves undefined is still read (every byte is an ISO 8859-1 character), and
    the :61: checks decide whether it is a statement."""
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


_LINE_61 = re.compile(r"^:61:\d{6}(\d{4})?R?[CD][A-Z]?\d{1,12},\d{0,2}[NSF][A-Z0-9]{3}")


def _check_mt940_lines(name: str, text: str) -> None:
    """The library skips what it cannot read; a statement must not lose an entry silently."""
    if ":20:" not in text or ":61:" not in text and ":62F:" not in text:
        raise StatementError(name, _("not an MT940 statement (no :20: and :61:/:62F: fields)"))
    for index, line in enumerate((ln for ln in text.splitlines() if ln.startswith(":61:")), start=1):
        if not _LINE_61.match(line):
            raise StatementError(name, _("broken :61: line %(line)s"), entry=index, line=repr(line[:60]))


# --- source ids -------------------------------------------------------------------------------

def _with_source_ids(source: Source, entries: Iterator[Entry]) -> Iterator[Entry]:
    """The bank's reference where there is one (prefixed by format and account); otherwise a hash
    of the entry's fields and how often the same fields occurred before in this file, so the same
    file twice gives the same ids and two equal transfers on one day stay two payments."""
    seen: Counter[str] = Counter()
    for entry in entries:
        account = source.header.account_iban
        if entry.source_id:
            entry.source_id = f"{source.format}:{account}:{entry.source_id}"[:200]
        else:
            key = "\x1f".join(map(str, (account, entry.booked_on, entry.amount, entry.currency, entry.credit,
                                        entry.is_return, entry.reference, entry.end_to_end_id,
                                        entry.counterparty_iban, entry.counterparty_name)))
            seen[key] += 1
            digest = hashlib.sha256(f"{key}\x1f{seen[key]}".encode()).hexdigest()
            entry.source_id = f"{source.format}:hash:{digest}"
        yield entry
