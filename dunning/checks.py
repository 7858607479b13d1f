"""System checks of the dunning app (registered in DunningAppConfig.ready).

The tracking webhook without a secret would take events from anyone: a forged bounce stops an
order's reminders, a forged "delivered" moves it up a level. The webhook refuses to listen then
(dunning.views), and this check makes the misconfiguration loud: an **error** with DEBUG off, so
production does not start, a warning in development.

Registered as an ordinary check, not a deploy check (`register(deploy=True)`): deploy checks run
only under `manage.py check --deploy`, which nothing runs on start, whereas ordinary checks run
with every management command that checks, `migrate` among them, the one-shot step every
production start goes through (docker-compose.yml) before the web server comes up. DEBUG decides
the level because that is what tells production from development here (settings refuse a missing
SECRET_KEY the same way)."""

from __future__ import annotations

import warnings

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .tracking import tracking_provider, tracking_view_class, webhook_secrets


@checks.register(checks.Tags.security)
def check_tracking_webhook(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    provider = tracking_provider()
    if provider is None:  # not an anymail backend with tracking: no webhook is mounted
        return []
    if not webhook_secrets():
        message = (f"EMAIL_BACKEND sends through {provider}, but ANYMAIL_WEBHOOK_SECRET is not set (or not "
                   "'user:password'): its tracking webhook would take events from anyone, so it answers 404.")
        hint = ("Set ANYMAIL_WEBHOOK_SECRET=user:long-random-password and give the provider "
                f"https://user:long-random-password@<host>/webhooks/anymail/{provider}/tracking/")
        if settings.DEBUG:
            return [checks.Warning(message, hint=hint, id="dunning.W001")]
        return [checks.Error(message, hint=hint, id="dunning.E001")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracking_view_class(provider)()  # reads the provider's webhook settings, as each request will
    except ImproperlyConfigured as exc:
        return [checks.Error(f"The {provider} tracking webhook is not configured: {exc}", id="dunning.E002")]
    return []
