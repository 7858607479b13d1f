from django.urls import path

from . import views

app_name = "backoffice"

urlpatterns = [
    path("orders/open-payments/", views.open_payments, name="open_payments"),
]
