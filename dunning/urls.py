"""The e-mail provider's tracking webhook, mounted under /webhooks/anymail/ (config/urls.py)."""

from django.urls import path

from .views import tracking_webhook

app_name = "dunning"
urlpatterns = [
    path("<str:provider>/tracking/", tracking_webhook, name="tracking_webhook"),
]
