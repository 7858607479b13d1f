"""Counts in messages are grouped as the pages' figures are (issue 18, item 5): 1.234 in German,
1,234 in English, never 1234."""

import hashlib

from django.contrib.messages import get_messages

from accounts.models import ApiKey
from tests.factories import SalesAccountFactory


def make_keys(account, n, start=0):
    return ApiKey.objects.bulk_create([ApiKey(sales_account=account, name=f"k{i}", prefix=f"p{i}",
                                              key_hash=hashlib.sha256(str(i).encode()).hexdigest())
                                       for i in range(start, start + n)])


def revoke_all(client, one_id):
    """The admin's "select all" across pages, then the revoke action."""
    return client.post("/admin/accounts/apikey/", {"action": "revoke", "select_across": "1", "index": "0",
                                                   "_selected_action": [one_id]}, follow=True)


def test_a_count_in_a_message_is_grouped_in_german_and_english(client, support_user):
    account = SalesAccountFactory(name="Webshop")
    keys = make_keys(account, 1234)
    client.force_login(support_user)
    response = revoke_all(client, keys[0].pk)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["1.234 Schlüssel widerrufen."]
    keys = make_keys(account, 1100, start=5000)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = revoke_all(client, keys[0].pk)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["1,100 keys revoked."]
