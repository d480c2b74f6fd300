"""``core.postgresql.prepared``: the hot statements are really prepared on the server (once
per connection, then executed by name), inside and outside a transaction; Django's own
statements are not."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from accounts.models import Company
from core.postgresql.prepared import fetchall_prepared

SQL = "SELECT %(n)s::int + 1 AS answer -- tests.core.test_prepared"


def _prepared_here() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_a_statement_is_prepared_once_and_then_run_by_name_in_and_out_of_transactions():
    assert fetchall_prepared(SQL, {"n": 1}) == [(2,)]  # autocommit
    with transaction.atomic():
        assert fetchall_prepared(SQL, {"n": 41}) == [(42,)]  # a transaction's first statement (pipelined BEGIN)
        assert fetchall_prepared(SQL, {"n": 2}) == [(3,)]

    mine = [s for s in _prepared_here() if "tests.core.test_prepared" in s]
    assert len(mine) == 1  # prepared once on this connection, then run by name


@pytest.mark.django_db(transaction=True)
def test_djangos_own_statements_are_not_prepared():
    for _ in range(20):
        list(Company.objects.filter(slug="nobody"))
    assert not [s for s in _prepared_here() if "accounts_company" in s]
