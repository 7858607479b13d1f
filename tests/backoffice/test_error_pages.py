"""The error pages look like the back office and say what happened in the user's language, instead
of Django's bare "Not Found" / "Bad Request (400)" / "Server Error (500)" lines."""

from django.test import override_settings
from django.utils import translation
from django.views.defaults import server_error


def test_an_unknown_order_is_the_back_office_404_page(bo_client):
    response = bo_client.get("/orders/999999999/", HTTP_ACCEPT_LANGUAGE="de")
    html = response.content.decode()
    assert response.status_code == 404
    assert "Seite nicht gefunden" in html and 'id="not-found"' in html
    assert 'href="/orders/open-payments/"' in html  # the navigation of the back office


def test_a_bad_query_string_is_the_back_office_400_page(bo_client):
    response = bo_client.get("/orders/open-payments/?q=a%00b", HTTP_ACCEPT_LANGUAGE="de")
    html = response.content.decode()
    assert response.status_code == 400
    assert "Ungültige Anfrage" in html and "Steuerzeichen" in html


def test_the_404_page_in_english(bo_client):
    bo_client.cookies["django_language"] = "en"
    html = bo_client.get("/orders/999999999/").content.decode()
    assert "Page not found" in html and "mistyped" in html


@override_settings(DEBUG=False)
def test_the_500_page_renders_without_a_request_context(rf):
    """Django renders 500.html with an empty context (nothing may depend on the request or the
    database, which may be what failed)."""
    with translation.override("de"):
        response = server_error(rf.get("/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert "Serverfehler" in html and "protokolliert" in html and "backoffice.css" in html
