"""common.compiled.CompiledRows: the same rows as the queryset, the SQL built once per connection,
no rows kept between calls."""

import datetime
from decimal import Decimal

from django.forms.models import model_to_dict

from common.compiled import CompiledRows
from dunning.models import BaseRate, DunningConfig
from dunning.selectors import active_configs, base_rates
from tests.factories import DunningConfigFactory, PaymentMethodFactory, SalesAccountFactory


def test_instances_are_the_querysets_with_their_related_rows(config, django_assert_num_queries):
    other = DunningConfigFactory(sales_account=SalesAccountFactory(name="eBay"),
                                 payment_method=PaymentMethodFactory(code="paypal", payment_term_days=0))
    DunningConfigFactory(sales_account=other.sales_account, payment_method=config.payment_method, is_active=False)
    expected = list(DunningConfig.objects.filter(is_active=True).select_related("payment_method", "sales_account"))
    with django_assert_num_queries(1):
        configs = active_configs()
        # the relations come with the rows, as with select_related
        pairs = [(c.sales_account.name, c.payment_method.payment_term_days) for c in configs]
    assert [model_to_dict(c) for c in configs] == [model_to_dict(c) for c in expected]
    assert pairs == [(c.sales_account.name, c.payment_method.payment_term_days) for c in expected]
    assert all(not c._state.adding and c._state.db == "default" for c in configs)


def test_nothing_but_the_sql_is_kept(config):
    assert [c.pk for c in active_configs()] == [config.pk]
    DunningConfig.objects.filter(pk=config.pk).update(level_1_days=9)
    added = DunningConfigFactory(sales_account=config.sales_account,
                                 payment_method=PaymentMethodFactory(code="paypal", payment_term_days=0))
    assert {(c.pk, c.level_1_days) for c in active_configs()} == {(config.pk, 9), (added.pk, added.level_1_days)}


def test_the_queryset_is_built_and_compiled_once(db, django_assert_num_queries):
    built = []

    def build():
        built.append(1)
        return BaseRate.objects.order_by("valid_from").values_list("valid_from", "rate")

    rows = CompiledRows(build)
    seeded = rows.tuples()  # the rates the migrations load
    BaseRate.objects.create(valid_from=datetime.date(2091, 1, 1), rate=Decimal("3.62"))
    BaseRate.objects.create(valid_from=datetime.date(2090, 7, 1), rate=Decimal("3.12"))
    with django_assert_num_queries(1):
        got = rows.tuples()
    assert got == [*seeded, (datetime.date(2090, 7, 1), Decimal("3.12")), (datetime.date(2091, 1, 1), Decimal("3.62"))]
    assert all(isinstance(rate, Decimal) and isinstance(day, datetime.date) for day, rate in got)
    assert len(built) == 1
    assert base_rates() == list(BaseRate.objects.order_by("valid_from").values_list("valid_from", "rate"))

