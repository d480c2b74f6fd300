from django.apps import AppConfig


class TransBotConfig(AppConfig):
    name = "trans_bot"
    verbose_name = "Trans Bot"
