"""Only support staff (superusers) see and change the global switch; back-office staff get the rest.
Plus the contract check of /work/shared/contract/check_contract.py."""


import pytest
from django.contrib.auth.models import Group

from dunning.models import DunningAutomation

AUTOMATION_URLS = ["/admin/dunning/dunningautomation/", "/admin/dunning/dunningautomation/1/change/"]
BACK_OFFICE_CHANGELISTS = [
    "/admin/orders/order/",
    "/admin/dunning/emailtemplate/",
    "/admin/dunning/reminderassignment/",
    "/admin/dunning/dunningconfig/",
]


@pytest.mark.parametrize("url", AUTOMATION_URLS)
def test_back_office_gets_403_on_the_switch(client, backoffice_user, url):
    client.force_login(backoffice_user)
    assert client.get(url).status_code == 403


def test_back_office_cannot_post_the_switch(client, backoffice_user):
    client.force_login(backoffice_user)
    response = client.post(AUTOMATION_URLS[1], {"enabled": "on", "interval_minutes": "5"})
    assert response.status_code == 403
    assert not DunningAutomation.load().enabled


def test_back_office_does_not_see_the_switch_on_the_index(client, backoffice_user):
    client.force_login(backoffice_user)
    response = client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/admin/dunning/dunningautomation/" not in html
    assert "/admin/dunning/emailtemplate/" in html  # the rest of the app is there


@pytest.mark.parametrize("url", AUTOMATION_URLS)
def test_support_opens_the_switch(client, support_user, url):
    client.force_login(support_user)
    response = client.get(url, follow=True)  # the changelist of a singleton may lead to its change page
    assert response.status_code == 200
    assert 'name="interval_minutes"' in response.content.decode()


def test_support_sees_the_switch_on_the_index(client, support_user):
    client.force_login(support_user)
    assert "/admin/dunning/dunningautomation/" in client.get("/admin/").content.decode()


@pytest.mark.parametrize("url", BACK_OFFICE_CHANGELISTS)
def test_back_office_opens_its_changelists(client, backoffice_user, url):
    client.force_login(backoffice_user)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", AUTOMATION_URLS + BACK_OFFICE_CHANGELISTS)
def test_staff_outside_the_group_gets_nothing(client, outsider_user, url):
    client.force_login(outsider_user)
    assert client.get(url).status_code == 403


def test_back_office_group_has_no_permission_on_the_switch(db):
    group = Group.objects.get(name="Back office")
    codenames = set(group.permissions.values_list("content_type__model", flat=True))
    assert "dunningautomation" not in codenames
    assert "automationchange" not in codenames
    assert {"order", "emailtemplate", "reminderassignment", "dunningconfig"} <= codenames
