from django.apps import AppConfig


class GrowthConfig(AppConfig):
    name = "growth"
    verbose_name = "Growth experiments"

    def ready(self) -> None:
        # The usage summary API sits below growth: growth fills ``upgrade.prompt`` through
        # usage's extension hook, so usage never imports growth.
        from growth.selectors import summary_prompt_fill
        from growth.services import warning_email_prompt
        from usage.extensions import summary_extension_register, warning_email_extension_register

        summary_extension_register(summary_prompt_fill)
        warning_email_extension_register(warning_email_prompt)
