"""The parsers on real-world-shaped files of three banks per format (tests/payments/fixtures/), and
the files they must refuse with one clear line."""

import io
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from payments.parsing import StatementError, sources_of

FIXTURES = Path(__file__).parent / "fixtures"


def parse(path_or_bytes, name="file.xml"):
    if isinstance(path_or_bytes, Path):
        name, data = path_or_bytes.name, path_or_bytes.read_bytes()
    else:
        data = path_or_bytes
    sources = sources_of(name, lambda: io.BytesIO(data))
    return sources, [e for s in sources for e in s.entries()]


def test_camt_sparkasse_001_02():
    [source], entries = parse(FIXTURES / "camt053_sparkasse_001_02.xml")
    assert source.format == "camt053"
    assert (source.header.account_iban, str(source.header.period_from)) == ("DE89370400440532013000", "2026-11-23")
    credit, debit, partial, reversal = entries
    assert (credit.credit, credit.booked, credit.is_return, credit.amount) == (True, True, False, Decimal("49.90"))
    assert credit.reference == "Bestellung A100001 vielen Dank"  # NOTPROVIDED is no reference
    assert (credit.counterparty_name, credit.counterparty_iban) == ("Erika Mustermann", "DE02120300000000202051")
    assert credit.source_id == "camt053:DE89370400440532013000:2026112300001"
    assert not debit.credit
    assert partial.end_to_end_id == "E2E-4711" and "A100002" in partial.reference
    assert reversal.is_return  # RvslInd true


def test_camt_deutsche_bank_001_08_batch_and_return():
    [source], entries = parse(FIXTURES / "camt053_deutsche_bank_001_08.xml")
    single, batch_a, batch_b, returned, pending = entries
    assert single.counterparty_name == "Hans Beispiel"  # 001.08: Dbtr/Pty/Nm
    assert "RF18A100004" in single.reference and single.end_to_end_id == "A100004"  # Strd/CdtrRefInf, EndToEndId
    assert (batch_a.amount, batch_b.amount) == (Decimal("30.00"), Decimal("50.00"))  # one per TxDtls
    assert batch_a.index == batch_b.index == 2
    assert returned.is_return  # RtrInf / SubFmlyCd RRTN
    assert not pending.booked  # PDNG
    assert len({e.source_id for e in entries}) == 5 and all(e.source_id.startswith("camt053:hash:") for e in entries)


def test_camt_commerzbank_001_04_addtl_texts():
    [source], entries = parse(FIXTURES / "camt053_commerzbank_001_04.xml")
    tx_text, entry_text, usd = entries
    assert "a100008" in tx_text.reference  # AddtlTxInf
    assert tx_text.source_id.endswith(":CBK-TX-1")  # the transaction's AcctSvcrRef wins
    assert entry_text.reference == "GUTSCHRIFT A100009/A100010 DANKE"  # AddtlNtryInf
    assert usd.currency == "USD"


def test_source_ids_are_stable():
    first = parse(FIXTURES / "camt053_deutsche_bank_001_08.xml")[1]
    again = parse(FIXTURES / "camt053_deutsche_bank_001_08.xml")[1]
    assert [e.source_id for e in first] == [e.source_id for e in again]


@pytest.mark.parametrize("version", ["02", "03", "04", "05", "06", "07", "08"])
def test_every_camt_053_version(version):
    xml = (FIXTURES / "camt053_sparkasse_001_02.xml").read_bytes().replace(b"camt.053.001.02",
                                                                              f"camt.053.001.{version}".encode())
    assert len(parse(xml)[1]) == 4


def test_zip_of_several_statements():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("camt053_sparkasse_001_02.xml", "camt053_commerzbank_001_04.xml"):
            z.write(FIXTURES / name, name)
    sources, entries = parse(buf.getvalue(), "day.zip")
    assert [s.name for s in sources] == ["day.zip/camt053_sparkasse_001_02.xml",
                                         "day.zip/camt053_commerzbank_001_04.xml"]
    assert len(entries) == 7


def test_mt940_sparkasse_structured_86():
    [source], entries = parse(FIXTURES / "mt940_sparkasse.sta")
    assert source.format == "mt940"
    credit, debit, partial, retoure = entries
    assert credit.reference == "Bestellung A100001 vielen Dank"  # SVWZ+ over ?21/?22, EREF NOTPROVIDED dropped
    assert credit.counterparty_name == "Erika Mustermann"  # ?32 + ?33
    assert credit.counterparty_iban == "DE02120300000000202051"  # ?31
    assert not debit.credit
    assert partial.end_to_end_id == "A100002"  # EREF+
    assert retoure.is_return and not retoure.credit  # RC, GVC 159


def test_mt940_deutsche_bank_bank_reference():
    _, entries = parse(FIXTURES / "mt940_deutsche_bank.mt940")
    assert entries[0].source_id == "mt940:50010517/5407324931:DB2611240001"
    assert entries[0].reference.startswith("A100004")  # ?20 without SVWZ
    assert [e.credit for e in entries] == [True, True, False]


def test_mt940_commerzbank_free_text_two_statements():
    [source], entries = parse(FIXTURES / "mt940_commerzbank.txt")
    assert [str(e.booked_on) for e in entries] == ["2026-11-25", "2026-11-26"]
    assert "a100008" in entries[0].reference
    assert entries[1].is_return  # "RETOURE" in the text


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><X>&lol3;</X></Document>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><X>&xxe;</X></Document>"""


@pytest.mark.parametrize(("data", "problem"), [
    (LAUGHS, "document type declaration"),
    (XXE, "document type declaration"),
    (b"<Document><BkToCstmrStmt/></Document>", "not a camt.053 statement"),
    (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.054.001.02'/>", "camt.054"),
    (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.052.001.08'/>", "camt.052"),
    (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.09'/>", "001.09 is not supported"),
    (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'><Stmt>", "not well-formed"),
    (b"Hello, world", "not a camt.053 XML file"),
    (b"", "empty"),
    (b"PK\x03\x04 truncated", "not a readable ZIP"),
])
def test_refused(data, problem):
    with pytest.raises(StatementError) as err:
        parse(data, "bad.xml")
    assert problem in str(err.value) and str(err.value).startswith("bad.xml")


def test_comma_decimal_names_the_entry():
    xml = (FIXTURES / "camt053_sparkasse_001_02.xml").read_bytes().replace(b">20.00<", b">20,00<")
    with pytest.raises(StatementError, match=r"^bad.xml: entry 3: invalid amount '20,00'"):
        parse(xml, "bad.xml")


def test_mt940_broken_61_line():
    data = (FIXTURES / "mt940_sparkasse.sta").read_bytes().replace(b":61:2611231123CR20,00", b":61:26112X1123CR20.00")
    with pytest.raises(StatementError, match=r"^bad.sta: entry 3: broken :61: line"):
        parse(data, "bad.sta")


def test_zip_with_a_non_xml_member():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(StatementError, match="day.zip/notes.txt: a ZIP may hold camt.053 XML files only"):
        parse(buf.getvalue(), "day.zip")


def test_zip_truncated():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(FIXTURES / "camt053_sparkasse_001_02.xml", "a.xml")
    with pytest.raises(StatementError, match="not a readable ZIP"):
        parse(buf.getvalue()[:-40], "day.zip")
