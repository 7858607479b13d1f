from django.urls import path

from . import views

app_name = "backoffice"

urlpatterns = [
    path("orders/open-payments/", views.open_payments, name="open_payments"),
    path("orders/dashboard/", views.dashboard, name="dashboard"),
    path("orders/open-payments/help/", views.overview_help, name="overview_help"),
    path("orders/open-payments/export/", views.export_orders, name="export_orders"),
    path("orders/open-payments/export/<int:pk>/", views.export_job, name="export_job"),
    path("orders/open-payments/export/<int:pk>/file", views.export_job_file, name="export_job_file"),
    path("orders/open-payments/notify/", views.notify, name="notify"),
    path("orders/open-payments/runs/<int:pk>/", views.notify_run, name="notify_run"),
    path("orders/actions/", views.bulk_action, name="bulk_action"),
    path("orders/<int:pk>/", views.order_detail, name="order_detail"),
    path("orders/<int:pk>/undo-paid/", views.order_undo_paid, name="order_undo_paid"),
    path("orders/<int:pk>/email/", views.order_email, name="order_email"),
    path("payments/upload/", views.statement_upload, name="statement_upload"),
    path("payments/unmatched/", views.unmatched, name="unmatched_payments"),
    path("payments/unmatched/count/", views.unmatched_count_json, name="unmatched_count"),
    path("payments/<int:pk>/action/", views.payment_action, name="payment_action"),
    path("orders/reminders/<int:pk>/resolve/", views.reminder_resolve, name="reminder_resolve"),
    path("orders/reminders/<int:pk>/letter.pdf", views.reminder_letter, name="reminder_letter"),
    path("orders/letters/", views.letters_create, name="letters_create"),
    path("orders/letters/<int:pk>/", views.letter_batch, name="letter_batch"),
    path("orders/letters/<int:pk>/letters.pdf", views.letter_batch_pdf, name="letter_batch_pdf"),
]
