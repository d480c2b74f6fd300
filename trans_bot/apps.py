from django.apps import AppConfig


class TransBotConfig(AppConfig):
    name = "trans_bot"
    verbose_name = "Trans Bot"

    def ready(self) -> None:
        from django.contrib import admin

        from core import tenant_scope
        from trans_bot import checks  # noqa: F401 (registers the deploy check)

        tenant_scope.install_celery_hooks()

        # The admin is the ops back office. "View site" is the customer pages' front door: a
        # member lands on their account (/account/), anyone else on the sign-in page.
        admin.site.site_header = "Trans Bot back office"
        admin.site.site_title = "Trans Bot back office"
        admin.site.index_title = "Operations"
        admin.site.site_url = "/"
        # The lists are wide (status, latency, last check, delivery per channel): at 1,400 px
        # they need the room the app list in a sidebar would take; Home lists the apps.
        admin.site.enable_nav_sidebar = False
