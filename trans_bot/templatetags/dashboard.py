from django import template

from trans_bot.dashboard import dashboard_overview
from trans_bot.money import format_money

register = template.Library()


@register.simple_tag
def dashboard():
    return dashboard_overview()


@register.filter
def money(minor, currency):
    return format_money(minor, currency)
