from django import template

from core.money import format_money
from trans_bot.dashboard import dashboard_overview

register = template.Library()


@register.simple_tag
def dashboard():
    return dashboard_overview()


@register.filter
def money(minor, currency):
    return format_money(minor, currency)
