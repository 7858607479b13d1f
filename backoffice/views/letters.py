"""Reminder letters: one reminder's PDF letter, and "all letters as one PDF" for postal sending
(inline when few, in the worker with a progress page when many; dunning.services.letter_batches)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dunning.letters import letter_filename, letters_queryset, render_letter_pdf
from dunning.models import DunningRun, LetterBatch, Reminder
from dunning.services import letter_batch_create

from ..permissions import back_office_required
from .selection import bad_request, stored_file_response

LIVE = (Reminder.Status.SENT, Reminder.Status.DELIVERED, Reminder.Status.PENDING)


def _pdf(data: bytes, filename: str, *, download: bool) -> HttpResponse:
    response = HttpResponse(data, content_type="application/pdf")
    disposition = "attachment" if download else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@back_office_required
def reminder_letter(request: HttpRequest, pk: int) -> HttpResponse:
    """The letter of one reminder, with the claim it was sent with (the frozen snapshot)."""
    reminder = get_object_or_404(letters_queryset(), pk=pk)
    return _pdf(render_letter_pdf(reminder), letter_filename(reminder.order.number, reminder.level),
                download=request.GET.get("download") == "1")


@back_office_required
@require_POST
def letters_create(request: HttpRequest) -> HttpResponse:
    """All letters of a Notify run (its reminders that went out or are in flight) as one PDF."""
    run = DunningRun.objects.filter(pk=request.POST.get("run") or 0).first() if (
        request.POST.get("run") or "").isdigit() else None
    if run is None:
        return bad_request(request, _("Choose the Notify run whose letters you want."))
    ids = list(Reminder.objects.filter(run=run, status__in=LIVE).order_by("order__number", "id")
               .values_list("id", flat=True))
    if not ids:
        messages.warning(request, _("This run sent no reminders, so there are no letters."))
        return redirect("backoffice:notify_run", pk=run.pk)
    batch = letter_batch_create(reminder_ids=ids, user=request.user, now=timezone.now())
    return redirect("backoffice:letter_batch", pk=batch.pk)


@back_office_required
def letter_batch(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(LetterBatch, pk=pk)
    return render(request, "backoffice/letter_batch.html", {
        "batch": batch,
        "refresh": not batch.is_finished,
        "pdf_url": reverse("backoffice:letter_batch_pdf", args=[batch.pk]) if batch.pdf else "",
    })


@back_office_required
def letter_batch_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(LetterBatch, pk=pk)
    return stored_file_response(
        request, batch.pdf, filename=f"letters-{batch.created_at:%Y-%m-%d}-{batch.pk}.pdf",
        content_type="application/pdf", not_ready=_("The letters are not ready yet."),
        gone=_("The file of these letters no longer exists. Make the letters again from the Notify run's result "
               "page."))
