"""The back-office pages, one module per noun: the overview, Notify, bulk actions on a selection
and the order page. Views read through selectors, write through services, and turn outcomes into
messages."""

from .bulk import bulk_action
from .dashboard import dashboard
from .export import export_job, export_job_file, export_orders
from .help import overview_help
from .letters import letter_batch, letter_batch_pdf, letters_create, reminder_letter
from .notify import notify, notify_run
from .orders import order_detail, order_email, order_undo_paid, reminder_resolve
from .overview import open_payments
from .payments import payment_action, statement_upload, unmatched, unmatched_count_json

__all__ = [
    "bulk_action", "dashboard", "export_job", "export_job_file", "export_orders", "letter_batch", "letter_batch_pdf",
    "letters_create", "notify",
    "notify_run", "open_payments", "order_detail", "order_email", "order_undo_paid", "overview_help",
    "payment_action", "reminder_letter", "reminder_resolve", "statement_upload", "unmatched", "unmatched_count_json",
]
