"""factory_boy factories: one place for building domain objects in tests."""

import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import factory
from django.contrib.auth.models import Group, User

from accounts.models import SalesAccount
from dunning.models import DunningConfig, EmailTemplate, Reminder, ReminderAssignment
from orders.models import Order, PaymentMethod

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=BERLIN)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "secret-pass-123")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            for name in extracted:
                self.groups.add(Group.objects.get(name=name))
        if create:
            self.save()


class SalesAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SalesAccount
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"Shop {n}")
    channel = SalesAccount.Channel.WEBSHOP
    sender_email = factory.LazyAttribute(lambda a: f"billing@{a.name.lower().replace(' ', '')}.example")
    reply_to_email = "support@shop.example"
    team_email = "team@shop.example"
    language = "de"
    payment_instructions = "IBAN DE02 1203 0000 0000 2020 51"


class PaymentMethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentMethod
        django_get_or_create = ["code"]

    code = "invoice"
    name = factory.LazyAttribute(lambda m: m.code.title())
    is_prepayment = False
    payment_term_days = 14


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    sales_account = factory.SubFactory(SalesAccountFactory, name="Webshop")
    payment_method = factory.SubFactory(PaymentMethodFactory)
    number = factory.Sequence(lambda n: f"A{100000 + n}")
    customer_name = factory.Faker("name", locale="de_DE")
    customer_email = factory.Sequence(lambda n: f"customer{n}@example.com")
    total = Decimal("49.90")
    currency = "EUR"
    ordered_at = factory.LazyFunction(lambda: berlin(2026, 10, 1, 12, 0))


class EmailTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailTemplate
        django_get_or_create = ["name", "language"]

    name = "Reminder 1"
    language = "de"
    subject = "Zahlungserinnerung zu Bestellung {{ order.number }}"
    body = "Hallo {{ customer_name }},\nbitte zahlen Sie {{ order.total }} bis heute.\n{{ sales_account.name }}"


class DunningConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DunningConfig
        django_get_or_create = ["sales_account", "payment_method"]

    sales_account = factory.SubFactory(SalesAccountFactory, name="Webshop")
    payment_method = factory.SubFactory(PaymentMethodFactory)
    is_active = True
    level_1_days = 7
    level_2_days = 14
    level_3_days = 21
    min_days_between_reminders = 7


class ReminderAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReminderAssignment
        django_get_or_create = ["sales_account", "level"]

    sales_account = factory.SubFactory(SalesAccountFactory, name="Webshop")
    level = 1
    template = factory.SubFactory(EmailTemplateFactory, name=factory.LazyAttribute(
        lambda t: f"Reminder {t.factory_parent.level}"))
    send_automatically = True


class ReminderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reminder

    order = factory.SubFactory(OrderFactory)
    level = 1
    trigger = Reminder.Trigger.AUTOMATIC
    recipient = factory.LazyAttribute(lambda r: r.order.customer_email)
    subject = "Reminder"
    body = "Please pay."
    status = Reminder.Status.SENT
    created_at = factory.LazyFunction(lambda: berlin(2026, 11, 1, 9, 0))
