from django.contrib import admin

from .models import SalesAccount


@admin.register(SalesAccount)
class SalesAccountAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "sender_email", "team_email", "language", "is_active"]
    list_filter = ["channel", "language", "is_active"]
    search_fields = ["name", "sender_email"]
