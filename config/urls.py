from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="backoffice:open_payments", permanent=False, query_string=True),
         name="home"),  # a bookmarked "/?dunning_level=2" keeps its filter
    path("accounts/", include("accounts.urls")),  # sign-in, password change; reset only if DJANGO_PASSWORD_RESET
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),  # orders in, dunning state out (docs/rules/api-and-webhooks.md)
    # The e-mail provider's delivery/bounce webhook (basic auth: ANYMAIL_WEBHOOK_SECRET): only the configured
    # provider's answers, everything else is a 404 (see dunning/views.py and dunning/tracking.py)
    path("webhooks/anymail/", include("dunning.urls")),
    path("", include("backoffice.urls")),
]

# Outside an API view: problem documents under /api/, the back office's pages elsewhere (api/errors.py)
handler400 = "api.errors.bad_request"
handler404 = "api.errors.page_not_found"
handler500 = "api.errors.server_error"
