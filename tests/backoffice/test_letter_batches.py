""""All letters as one PDF" (docs/rules/letters.md): offered by the Notify confirmation and the run's
result page; a few letters are made in the request, many in the worker with a progress page."""

import io

import pytest
from django.urls import reverse

from dunning.models import DunningRun, LetterBatch, Reminder
from tests.letters_support import page_text

NOTIFY = "/orders/open-payments/notify/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def level1(place, assignments):
    return [place(10, number=f"A{i}", customer_street="Lindenallee 5", customer_postcode="80331",
                  customer_city="München") for i in range(3)]


def pages_of(pdf: bytes) -> int:
    import pypdf

    return len(pypdf.PdfReader(io.BytesIO(pdf)).pages)


def test_confirmation_offers_letters_and_send_and_letters_gives_one_pdf(needs_weasyprint, bo_client, level1,
                                                                        mailoutbox):
    confirm = bo_client.get(NOTIFY, {"dunning_level": "1", "select_across": "1"}).content.decode()
    assert 'id="confirm-notify-letters"' in confirm and "alle Briefe als ein PDF" in confirm
    response = bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1", "letters": "1"})
    batch = LetterBatch.objects.get()
    assert response.url == reverse("backoffice:letter_batch", args=[batch.pk])
    assert len(mailoutbox) == 3 and batch.is_finished and batch.done == batch.total == 3
    page = bo_client.get(response.url).content.decode()
    assert '<meta http-equiv="refresh"' not in page and 'id="letters-download"' in page
    pdf = b"".join(bo_client.get(reverse("backoffice:letter_batch_pdf", args=[batch.pk])).streaming_content)
    assert pages_of(pdf) == 3
    text = page_text(pdf)
    assert [n for n in ("A0", "A1", "A2") if f"Auftragsnummer {n}" in text] == ["A0", "A1", "A2"]


def test_large_batch_renders_in_the_worker_with_progress(needs_weasyprint, bo_client, level1, settings,
                                                         django_capture_on_commit_callbacks):
    bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    run = DunningRun.objects.get()
    result = bo_client.get(reverse("backoffice:notify_run", args=[run.pk])).content.decode()
    assert 'id="all-letters"' in result
    settings.DUNNING_ASYNC_LETTERS_THRESHOLD = 2
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = bo_client.post(reverse("backoffice:letters_create"), {"run": run.pk})
    batch = LetterBatch.objects.get()
    assert response.url == reverse("backoffice:letter_batch", args=[batch.pk]) and len(callbacks) == 1
    page = bo_client.get(response.url).content.decode()
    assert '<meta http-equiv="refresh"' in page and "0 von 3 Briefen erstellt" in page
    assert bo_client.get(reverse("backoffice:letter_batch_pdf", args=[batch.pk])).status_code == 400
    callbacks[0]()  # the commit: eager Celery renders inline
    batch.refresh_from_db()
    assert batch.is_finished and batch.done == 3 and batch.pdf and not batch.error
    page = bo_client.get(response.url).content.decode()
    assert '<meta http-equiv="refresh"' not in page and "3 Briefe sind fertig" in page


def test_broken_queue_is_stated(needs_weasyprint, bo_client, level1, settings, django_capture_on_commit_callbacks):
    from unittest import mock

    from kombu.exceptions import OperationalError

    bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1"})
    settings.DUNNING_ASYNC_LETTERS_THRESHOLD = 1
    with mock.patch("dunning.tasks.render_letter_batch.delay", side_effect=OperationalError("down")), \
            django_capture_on_commit_callbacks(execute=True):
        response = bo_client.post(reverse("backoffice:letters_create"), {"run": DunningRun.objects.get().pk})
    page = bo_client.get(response.url).content.decode()
    assert "Die Briefe konnten nicht erstellt werden" in page and "broker" in page


@pytest.mark.parametrize("run", ["", "x", "999999"])
def test_letters_of_an_unknown_run_is_400(bo_client, run):
    assert bo_client.post(reverse("backoffice:letters_create"), {"run": run}).status_code == 400
    assert not LetterBatch.objects.exists()


def test_run_without_reminders_has_no_letters(bo_client, level1):
    Reminder.objects.all().delete()
    run = DunningRun.objects.create(trigger="manual", started_at=level1[0].ordered_at)
    response = bo_client.post(reverse("backoffice:letters_create"), {"run": run.pk})
    assert response.status_code == 302 and not LetterBatch.objects.exists()


def test_letter_pages_need_back_office_staff(client, level1):
    batch = LetterBatch.objects.create(reminder_ids=[1], created_at=level1[0].ordered_at, total=1)
    for url in (reverse("backoffice:letter_batch", args=[batch.pk]),
                reverse("backoffice:letter_batch_pdf", args=[batch.pk])):
        assert client.get(url).status_code == 302
    assert client.post(reverse("backoffice:letters_create"), {"run": 1}).status_code == 302


def test_large_batch_laid_out_on_several_processes_keeps_the_order(needs_weasyprint, bo_client, level1, settings,
                                                                   caplog):
    settings.DUNNING_LETTERS_PER_DOCUMENT = 1  # three documents: more than two go to the processes
    settings.DUNNING_LETTER_PROCESSES = 2
    bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1", "letters": "1"})
    batch = LetterBatch.objects.get()
    assert batch.is_finished and not batch.error
    with batch.pdf.open("rb") as fh:
        pdf = fh.read()
    assert pages_of(pdf) == 3
    text = page_text(pdf)
    assert text.index("Auftragsnummer A0") < text.index("Auftragsnummer A1") < text.index("Auftragsnummer A2")
    assert "rendered in one process" not in caplog.text  # the processes did it


def test_batches_past_the_keeping_days_are_deleted_with_their_files(needs_weasyprint, bo_client, level1, settings,
                                                                    tmp_path):
    import datetime

    from dunning import tasks
    from dunning.services import letter_batches_purge

    settings.LETTER_BATCHES_KEEP_DAYS = 30
    bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1", "letters": "1"})
    run = DunningRun.objects.get()
    bo_client.post(reverse("backoffice:letters_create"), {"run": run.pk})
    old, new = LetterBatch.objects.order_by("id")
    old_file = tmp_path / old.pdf.name
    assert old_file.exists() and (tmp_path / new.pdf.name).exists()
    page = bo_client.get(reverse("backoffice:letter_batch", args=[old.pk])).content.decode()
    from zoneinfo import ZoneInfo

    keep_until = (old.created_at + datetime.timedelta(days=30)).astimezone(ZoneInfo("Europe/Berlin"))
    assert f"Die Datei wird bis zum {keep_until:%d.%m.%Y} aufbewahrt" in page
    LetterBatch.objects.filter(pk=old.pk).update(created_at=old.created_at - datetime.timedelta(days=31))

    assert letter_batches_purge(now=new.created_at) == 1
    assert list(LetterBatch.objects.values_list("pk", flat=True)) == [new.pk]
    assert not old_file.exists() and (tmp_path / new.pdf.name).exists()
    assert Reminder.objects.count() == 3  # the reminders and their single letters stay
    assert bo_client.get(reverse("backoffice:letter_batch", args=[old.pk])).status_code == 404
    assert tasks.purge_letter_batches() == 0  # beat's task: nothing more is that old


def test_a_batch_whose_file_is_gone_says_so(needs_weasyprint, bo_client, level1, tmp_path):
    bo_client.post(NOTIFY, {"dunning_level": "1", "select_across": "1", "letters": "1"})
    batch = LetterBatch.objects.get()
    (tmp_path / batch.pdf.name).unlink()
    response = bo_client.get(reverse("backoffice:letter_batch_pdf", args=[batch.pk]))
    assert response.status_code == 410
    assert "Die Datei dieser Briefe gibt es nicht mehr" in response.content.decode()


def test_beat_sends_the_purge_daily():
    from config.celery import app

    app.loader.import_default_modules()
    app.finalize()
    schedule = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert schedule["dunning.tasks.purge_letter_batches"]["schedule"] == 86400.0
    assert schedule["backoffice.tasks.purge_export_jobs"]["schedule"] == 86400.0
