"""Sign-in and password pages: Django's auth views, with password reset by e-mail off unless
DJANGO_PASSWORD_RESET is on (404 otherwise) and throttled when on (accounts.services)."""

import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone

from .services import password_reset_allowed

logger = logging.getLogger(__name__)


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs):
        return super().get_context_data(password_reset_enabled=settings.PASSWORD_RESET_ENABLED, **kwargs)


class PasswordResetEnabledMixin:
    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not settings.PASSWORD_RESET_ENABLED:
            raise Http404("password reset is off")
        return super().dispatch(request, *args, **kwargs)


class PasswordResetView(PasswordResetEnabledMixin, auth_views.PasswordResetView):
    """Whether the address belongs to someone, and whether a mail went out or a limit held it back,
    the answer is the same redirect to the same page."""

    def form_valid(self, form):
        client = self.request.META.get("REMOTE_ADDR", "")
        if password_reset_allowed(email=form.cleaned_data["email"], client=client, now=timezone.now()):
            return super().form_valid(form)
        logger.warning("Password reset not sent: the limit per address or per client (%s) is reached", client)
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetDoneView(PasswordResetEnabledMixin, auth_views.PasswordResetDoneView):
    pass


class PasswordResetConfirmView(PasswordResetEnabledMixin, auth_views.PasswordResetConfirmView):
    pass


class PasswordResetCompleteView(PasswordResetEnabledMixin, auth_views.PasswordResetCompleteView):
    pass
