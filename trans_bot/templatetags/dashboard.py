from django import template

from core.durations import duration_text
from core.money import format_money
from trans_bot.dashboard import dashboard_overview

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard(context):
    """The dashboard as the signed-in user may see it."""
    return dashboard_overview(user=context["request"].user)


@register.filter
def money(minor, currency):
    return format_money(minor, currency)


@register.filter
def seconds(value):
    """600 → "10 min"."""
    return duration_text(float(value))
