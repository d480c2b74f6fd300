import threading

import pytest
from django.db import connection

from audit.models import AuditLog
from audit.selectors import audit_verify_chain
from audit.services import Actor, audit_record


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_writers_keep_one_unbroken_chain():
    threads, per_thread, errors = 8, 125, []
    start = threading.Barrier(threads)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                audit_record(action="bench.append", actor=Actor.system(f"writer-{n}"), details={"i": i})
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    assert errors == []
    assert AuditLog.objects.count() == 1000
    assert list(AuditLog.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 1001))
    result = audit_verify_chain()
    assert result.ok and result.checked == 1000
