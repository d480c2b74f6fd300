"""Load demo data: an ops superuser, then whatever each app's ``demo.load()`` adds.

Safe to run again: every loader creates only what is missing.
"""

import importlib
import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from billing.demo import CUSTOMER_LOGIN

DEMO_APPS = ["ops", "billing", "usage", "regions"]


class Command(BaseCommand):
    help = "Create the demo ops superuser and demo data (idempotent)."

    def handle(self, *args, **options):
        username = os.environ.get("DEMO_ADMIN_USER", "ops")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "transbot-demo")
        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"email": "ops@transbot.local", "is_staff": True, "is_superuser": True},
            )
            if created:
                user.set_password(password)
                user.save()
        for app in DEMO_APPS:
            try:
                module = importlib.import_module(f"{app}.demo")
            except ModuleNotFoundError as exc:
                if exc.name != f"{app}.demo":
                    raise
                continue
            module.load(stdout=self.stdout)
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin login: {username} / "
                + (password if created else "(unchanged; set when first created)")
                + f" at {settings.SITE_URL}/admin/"
            )
        )
        customer, customer_password, company = CUSTOMER_LOGIN
        self.stdout.write(
            self.style.SUCCESS(
                f"Customer login: {customer} / {customer_password} at {settings.SITE_URL}/account/ "
                f"(owner of {company}; the other demo owners sign in the same way)"
            )
        )
