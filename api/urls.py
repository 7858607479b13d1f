from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views

app_name = "api"


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from drf-spectacular-sidecar's static files, its init script a separate file (no
    inline script or style: the site's Content-Security-Policy holds)."""

    template_name = "api/swagger_ui.html"


urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="api:schema"), name="docs"),
    path("orders", views.OrderListView.as_view(), name="orders"),
    path("orders/bulk", views.OrderBulkView.as_view(), name="orders_bulk"),
    path("orders/<str:number>/dunning-block", views.DunningBlockView.as_view(), name="dunning_block"),
    path("orders/<str:number>", views.OrderDetailView.as_view(), name="order"),
    path("payments", views.PaymentView.as_view(), name="payments"),
]
