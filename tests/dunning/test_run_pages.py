"""Run pages (issue 18, item 5): a dunning run's admin page shows its details as tables in words,
never the stored JSON, with times in TIME_ZONE; the 403 page is German and in the site layout."""

import datetime
import re

import pytest

from dunning.models import DunningRun

UTC = datetime.UTC


def page_text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split()).replace("\xa0", " ")


@pytest.fixture
def scheduled_run(db):
    return DunningRun.objects.create(
        trigger=DunningRun.Trigger.SCHEDULED, started_at=datetime.datetime(2026, 11, 20, 23, 30, tzinfo=UTC),
        finished_at=datetime.datetime(2026, 11, 20, 23, 31, tzinfo=UTC), duration_ms=61234, sent=1234, skipped=2,
        failed=1, flagged=2, cancelled=7,
        details={"payments_matched": 3,
                 "levels": {"Webshop": {"2": {"sent": 11}, "1": {"sent": 1223, "failed": 1, "skipped": 2,
                                                                 "skipped:no_email": 1, "skipped:bounced": 1}}},
                 "cancellation": {"Webshop": {"flagged": 2, "cancelled": 0}, "eBay": {"flagged": 0, "cancelled": 7}}},
        error="Mahnstufe 1: E-Mail-Anbieter nicht erreichbar, Lauf abgebrochen: timeout")


def test_a_run_page_shows_its_details_in_words_and_local_time(client, support_user, scheduled_run):
    client.force_login(support_user)
    response = client.get(f"/admin/dunning/dunningrun/{scheduled_run.pk}/change/")
    assert response.status_code == 200
    text = page_text(response)
    # 23:30 UTC is 00:30 the next day in Berlin: title, breadcrumbs and fields all say so
    assert "Geplant 21.11.2026 00:30" in text and "2026-11-20" not in text
    assert "61,2 s" in text
    levels = page_text(response).split("Verkaufskanal", 1)[1]
    assert "Webshop Mahnstufe 1 1.223 1 0 2" in levels
    assert "keine E-Mail-Adresse: 1" in levels
    assert "Webshop Mahnstufe 2 11" in levels
    assert "eBay 0 7" in text and "3 Bankzahlungen vor dem Versand zugeordnet." in text
    assert "E-Mail-Anbieter nicht erreichbar" in text
    for raw in ('"levels"', "skipped:no_email", "payments_matched", "{"):
        assert raw not in response.content.decode().split('id="content-main"')[1].split("</form>")[0], raw


def test_a_manual_run_page_lists_level_selection_and_skipped_orders(client, support_user, db):
    run = DunningRun.objects.create(
        trigger=DunningRun.Trigger.MANUAL, started_at=datetime.datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        finished_at=datetime.datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC), duration_ms=5000, sent=3, skipped=1,
        started_by=support_user,
        details={"level": 2, "selected": 4, "skipped": {"no_email": 1}, "unknown": 0, "failed_errors": [],
                 "queued": False, "skipped_orders": {"41": "no_email"}, "unknown_orders": []})
    client.force_login(support_user)
    text = page_text(client.get(f"/admin/dunning/dunningrun/{run.pk}/change/"))
    assert "Mahnstufe 2: 4 Aufträge ausgewählt" in text
    assert "keine E-Mail-Adresse 1" in text and "#41 (keine E-Mail-Adresse)" in text


def test_an_old_run_without_details_still_shows(client, support_user, db):
    run = DunningRun.objects.create(trigger=DunningRun.Trigger.COMMAND, started_at=datetime.datetime.now(UTC),
                                    details={"something": "else"})
    client.force_login(support_user)
    response = client.get(f"/admin/dunning/dunningrun/{run.pk}/change/")
    assert response.status_code == 200 and "läuft" in page_text(response)


def test_the_automation_page_lists_runs_in_local_time(client, support_user, scheduled_run):
    client.force_login(support_user)
    text = page_text(client.get("/admin/dunning/dunningautomation/1/change/"))
    assert "21.11.2026 00:30" in text and "61,2 s" in text


def test_a_back_office_user_on_a_support_page_gets_the_german_403_in_the_layout(client, backoffice_user):
    client.force_login(backoffice_user)
    response = client.get("/admin/dunning/dunningautomation/1/change/")
    assert response.status_code == 403
    html = response.content.decode()
    assert '<html lang="de">' in html and 'id="header"' in html  # the site layout, with its navigation
    text = page_text(response)
    assert "Kein Zugriff" in text and "nur für den Support" in text and "Offene Zahlungen" in text
    assert "Forbidden" not in text


def test_the_403_page_in_english(client, backoffice_user):
    client.force_login(backoffice_user)
    response = client.get("/admin/dunning/dunningautomation/1/change/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403 and "for support staff only" in page_text(response)
