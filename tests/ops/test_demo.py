from io import StringIO

import pytest

from ops import demo
from ops.models import Notification, OpsTask


@pytest.mark.django_db
def test_demo_data_loads_once_however_often_it_runs():
    demo.load(stdout=StringIO())
    out = StringIO()
    demo.load(stdout=out)
    assert OpsTask.objects.filter(dedup_key__startswith="ops.demo:").count() == 3
    assert Notification.objects.filter(dedup_key="ops.demo:welcome").count() == 1
    assert "opened 0 demo task(s)" in out.getvalue()
