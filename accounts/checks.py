"""Deploy checks (manage.py check --deploy) for password reset by e-mail, when it is switched on."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

LOCAL_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


@register(Tags.security, deploy=True)
def check_password_reset(app_configs, **kwargs) -> list[Warning]:
    if not settings.PASSWORD_RESET_ENABLED:
        return []
    warnings = []
    if not settings.CACHE_URL:
        warnings.append(Warning(
            "DJANGO_PASSWORD_RESET is on but CACHE_URL is not set: every process counts the reset limits "
            "on its own, so several web workers together send more than the limit.",
            hint="Set CACHE_URL=redis://host:6379/1.", id="accounts.W001",
        ))
    if settings.EMAIL_BACKEND in LOCAL_EMAIL_BACKENDS:
        warnings.append(Warning(
            f"DJANGO_PASSWORD_RESET is on but EMAIL_BACKEND is {settings.EMAIL_BACKEND}: reset links, as good "
            "as passwords, end up in logs or files instead of the staff's inboxes.",
            hint="Configure a real provider (anymail or SMTP) or switch password reset off.", id="accounts.W002",
        ))
    return warnings
