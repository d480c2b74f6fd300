# Run by the chaos stack inside `manage.py shell -c` against its own database: a staff user
# with a token, a company with an API key, two regions on the test's fake region servers,
# and the beat schedules made fast (probes and sweeps every 2 s). Prints one JSON line.
import json
import os

from django.contrib.auth.models import User
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
from rest_framework.authtoken.models import Token

from accounts.models import Company, CompanyAPIKey, Membership
from billing.plans.models import Tier
from billing.stripe.models import CompanyStripe, TierPrice
from regions import routing
from regions.models import FailoverPolicy, Region, RegionStatus
from regions.selectors import policy_get
from regions.services import policy_sync_schedule

for code in ["starter", "pro", "enterprise"]:  # the prices the test's fake Stripe sells them at
    TierPrice.objects.create(tier=Tier.objects.get(code=code), price_id=f"price_{code}_month")
ops = User.objects.create_superuser("chaos", "chaos@chaos.test", "chaos-pw-123")
token = Token.objects.create(user=ops).key
acme = Company.objects.create(name="Acme Freight", slug="acme", tier=Tier.objects.get(code="starter"))
Membership.objects.create(user=ops, company=acme, role="owner")
CompanyStripe.objects.create(company=acme)
_, api_key = CompanyAPIKey.objects.create_key(company=acme, name="chaos")

for order, slug in enumerate(["primary", "secondary"]):
    Region.objects.create(
        name=slug.title(), slug=slug, base_url=os.environ[f"REGIONS_{slug.upper()}_URL"], order=order,
        probe_timeout=1.0, is_active=order == 0, status=RegionStatus.HEALTHY, consecutive_successes=5,
    )
policy = policy_get()
FailoverPolicy.objects.filter(pk=policy.pk).update(
    multi_region_enabled=True, probe_interval_seconds=2, failure_threshold=3, cooldown_seconds=0
)
policy_sync_schedule(policy=policy_get())
fast, _ = IntervalSchedule.objects.get_or_create(every=2, period=IntervalSchedule.SECONDS)
PeriodicTask.objects.filter(
    task__in=["ops.sweep_notifications", "billing.tasks.sweep_stripe_events"]
).update(interval=fast, enabled=True)
PeriodicTask.objects.filter(crontab__isnull=False).update(enabled=False)  # nightly jobs: not now
PeriodicTasks.update_changed()
routing.publish()
print(json.dumps({"token": token, "api_key": api_key}))
