"""Deploy checks (manage.py check --deploy): password reset by e-mail, when it is switched on, and
Django's https redirect behind a proxy it does not trust."""

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


@register(Tags.security, deploy=True)
def check_https_redirect(app_configs, **kwargs) -> list[Warning]:
    """Behind the TLS-terminating proxy every request reaches Django as http; only a trusted proxy's
    X-Forwarded-Proto tells it the client used https. Redirecting without one loops forever."""
    if settings.SECURE_SSL_REDIRECT and not settings.TRUSTED_PROXIES:
        return [Warning(
            "Django redirects http to https (SECURE_SSL_REDIRECT) but DJANGO_TRUSTED_PROXIES is empty: behind the "
            "reverse proxy every request looks like http, so every page would redirect to itself.",
            hint="Set DJANGO_TRUSTED_PROXIES to the proxy's address, or DJANGO_HTTPS_REDIRECT_BY_PROXY=true if the "
                 "proxy redirects to https itself.", id="accounts.W003",
        )]
    return []
