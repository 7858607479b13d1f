"""Damaged bank files: whatever bytes come in, the parsers give entries or one `StatementError` line,
and an import writes everything or nothing with that line, on PostgreSQL too. A mutation fuzz of
the fixture files (flipped, cut, repeated and inserted bytes; 20,000 files per run outside the
suite) found a crash in each of the cases pinned below; the property test runs a derandomized
sample of the same mutations in every run."""

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments.models import BankStatement, Payment
from payments.parsing import StatementError, sources_of
from payments.services import ImportRefused, statements_import

FIXTURES = Path(__file__).parent / "fixtures"
MT940 = FIXTURES / "mt940_sparkasse.sta"
CAMT = FIXTURES / "camt053_sparkasse_001_02.xml"


def parse(data: bytes, name: str):
    sources = sources_of(name, lambda: io.BytesIO(data))
    return [e for s in sources for e in s.entries()]


def one_line_refusal(data: bytes, name: str) -> str:
    with pytest.raises(StatementError) as err:
        parse(data, name)
    text = str(err.value)
    assert "\n" not in text and "\r" not in text and text.startswith(name), text
    return text


def zipped(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


# --- the cases the fuzz found -----------------------------------------------------------------------

def test_an_mt940_file_with_a_byte_windows_1252_leaves_undefined_is_read():
    """UTF-8 and Windows-1252 both refused a 0x81 byte in a purpose line: UnboundLocalError (a 500)."""
    data = MT940.read_bytes().replace(b"Teilzahlung", b"Teilzahlung \x81", 1)
    assert b"\x81" in data
    assert len(parse(data, "x.sta")) == len(parse(MT940.read_bytes(), "x.sta"))


def test_a_nul_byte_in_an_mt940_file_is_refused_with_its_line():
    """It reached PostgreSQL, which refuses NUL in text: a DataError (a 500)."""
    data = MT940.read_bytes().replace(b"Teilzahlung", b"Teil\x00zahlung", 1)
    line = data[: data.index(b"\x00")].count(b"\n") + 1
    assert f"line {line} holds a NUL byte" in one_line_refusal(data, "x.sta")


def test_nul_padding_and_ctrl_z_at_the_end_of_an_mt940_file_are_ignored():
    data = MT940.read_bytes()
    assert len(parse(data + b"\x00" * 300 + b"\x1a", "x.sta")) == len(parse(data, "x.sta"))


def test_a_damaged_deflate_stream_in_a_zip_is_refused():
    """zlib.error escaped the ZIP checks."""
    data = bytearray(zipped({"a.xml": CAMT.read_bytes()}))
    start = 30 + len("a.xml")  # the member's compressed bytes follow its local header
    data[start + 40: start + 60] = b"\xff" * 20
    text = one_line_refusal(bytes(data), "day.zip")
    assert "corrupt" in text or "not a readable ZIP" in text


def test_a_zip_member_python_cannot_unpack_is_refused():
    """NotImplementedError (an unknown compression method or ZIP version) escaped too."""
    data = bytearray(zipped({"a.xml": CAMT.read_bytes()}, zipfile.ZIP_STORED))
    data[8:10] = (99).to_bytes(2, "little")  # the local header's compression method
    central = data.rindex(b"PK\x01\x02")
    data[central + 10: central + 12] = (99).to_bytes(2, "little")
    one_line_refusal(bytes(data), "day.zip")


def test_an_xml_error_is_one_line():
    """lxml's message ends in a line break and a position."""
    data = CAMT.read_bytes().replace(b"<Ntry>", b"<Ntry>\x00", 1)
    assert "Entry" in one_line_refusal(data, "x.xml") or "XML" in one_line_refusal(data, "x.xml")


# --- through the command and the upload page, on the database ---------------------------------------

def test_the_command_refuses_a_damaged_file_with_one_line_and_writes_nothing(db, tmp_path, capsys):
    bad = tmp_path / "damaged.sta"
    bad.write_bytes(MT940.read_bytes().replace(b"Teilzahlung", b"Teil\x00zahlung", 1))
    with pytest.raises(SystemExit) as exit_:
        call_command("import_statement", str(CAMT), str(bad))
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("damaged.sta: line ") and "NUL" in err[0]
    assert not Payment.objects.exists() and not BankStatement.objects.exists()


def test_the_upload_page_refuses_a_damaged_file_with_a_message(client, backoffice_user):
    client.force_login(backoffice_user)
    data = MT940.read_bytes().replace(b"Teilzahlung", b"Teil\x00zahlung", 1)
    response = client.post("/payments/upload/", {"files": [SimpleUploadedFile("damaged.sta", data)]})
    assert response.status_code == 400 and "enthält ein NUL-Byte" in response.content.decode()  # in the page's language
    assert not Payment.objects.exists()


def test_a_file_name_with_control_characters_is_stored_readable(db, now):
    data = MT940.read_bytes()
    result = statements_import([("auszug\x00\n.sta", lambda: io.BytesIO(data))], now=now)
    assert result.entries and BankStatement.objects.get().file_name == "auszug??.sta"


# --- the property: any damage is entries or one line --------------------------------------------------

SEEDS = {p.name: p.read_bytes() for p in sorted(FIXTURES.iterdir())}
SEEDS["day.zip"] = zipped({"a.xml": CAMT.read_bytes(), "b.xml": (FIXTURES / "camt053_commerzbank_001_04.xml")
                           .read_bytes()})
JUNK = [b"\x00", b"\x81", b"\xff\xfe", b"<", b"&", b"]]>", b"</Ntry>", b":61:", b":86:", b"?20", b"\n", b"-", b",",
        b"99999999999999999999", b"2026-02-30", b"260230", b"\x1a"]

mutation = st.tuples(st.sampled_from(["set", "cut", "insert", "repeat", "truncate"]), st.floats(0, 1),
                     st.integers(1, 300), st.sampled_from(JUNK), st.integers(0, 255))


def damage(data: bytes, mutations) -> bytes:
    d = bytearray(data)
    for op, where, size, junk, byte in mutations:
        i = int(where * max(len(d) - 1, 0))
        if op == "set" and d:
            d[i] = byte
        elif op == "cut":
            del d[i:i + size]
        elif op == "insert":
            d[i:i] = junk
        elif op == "repeat":
            d[i:i] = d[i:i + size]
        elif op == "truncate":
            del d[i:]
    return bytes(d)


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(SEEDS)), mutations=st.lists(mutation, min_size=1, max_size=5))
def test_any_damage_gives_entries_or_one_line(name, mutations):
    data = damage(SEEDS[name], mutations)
    try:
        parse(data, name)
    except StatementError as exc:
        assert not re.search(r"[\r\n]", str(exc)), str(exc)


@pytest.mark.django_db
@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from([n for n in sorted(SEEDS) if n.endswith((".sta", ".mt940", ".txt"))]),
       mutations=st.lists(mutation, min_size=1, max_size=5))
def test_any_damaged_mt940_file_imports_or_is_refused_whole(name, mutations):
    """On the database: MT940 texts reach it as they are (XML cannot even carry a NUL)."""
    from django.utils import timezone

    data = damage(SEEDS[name], mutations)
    try:
        statements_import([(name, lambda: io.BytesIO(data))], dry_run=True, now=timezone.now())
    except ImportRefused as exc:
        assert "\n" not in str(exc)
    assert not Payment.objects.exists()


def test_reading_mt940_does_not_flood_the_log(caplog):
    """mt-940 logs every field it matches at INFO: dozens of lines per entry under LOG_LEVEL=INFO."""
    import logging

    with caplog.at_level(logging.INFO):
        parse(MT940.read_bytes(), "x.sta")
        with pytest.raises(StatementError):
            parse(MT940.read_bytes().replace(b":60F:C261123EUR1000,00", b":60F:C26112EUR"), "x.sta")
    assert not [r for r in caplog.records if r.name.startswith("mt940")]
