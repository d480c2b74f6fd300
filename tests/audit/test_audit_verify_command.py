import pytest
from django.core.management import CommandError, call_command

from audit.services import Actor, audit_record
from tests.owner import owner_execute

# Tampering is done as the tables' owner on a connection of its own (the application's
# role may not touch history), so the chain must be committed for it to see.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chain():
    return [audit_record(action=f"a.n{i}", actor=Actor.system("t"), details={"i": i}) for i in range(10)]


def _bypass_trigger(sql: str, params: list) -> None:
    """What an attacker with superuser rights could do: switch triggers off and edit."""
    owner_execute(sql, params, without_triggers=True)


def test_it_passes_an_intact_chain(chain, capsys):
    call_command("audit_verify")
    assert "10 records verify" in capsys.readouterr().out


def test_it_names_exactly_the_row_edited_in_sql(chain):
    tampered = chain[6]
    _bypass_trigger(
        "UPDATE audit_auditlog SET details = %s WHERE id = %s", ['{"i": 999}', tampered.pk]
    )
    with pytest.raises(CommandError) as err:
        call_command("audit_verify")
    message = str(err.value)
    assert f"record #{tampered.seq} (id {tampered.pk})" in message
    assert "does not match its hash" in message
    assert "6 records before it verify" in message


def test_it_notices_a_deleted_row(chain):
    _bypass_trigger("DELETE FROM audit_auditlog WHERE id = %s", [chain[3].pk])
    with pytest.raises(CommandError, match=f"record #{chain[3].seq} is missing"):
        call_command("audit_verify")


def test_it_notices_a_removed_tail(chain):
    _bypass_trigger("DELETE FROM audit_auditlog WHERE id = %s", [chain[-1].pk])
    with pytest.raises(CommandError, match="chain ends at #9 but its head records #10"):
        call_command("audit_verify")


def test_it_notices_a_rehashed_row_because_the_next_link_breaks(chain):
    from audit.chain import compute_hash
    from audit.models import AuditLog

    victim = AuditLog.objects.get(pk=chain[2].pk)
    victim.details = {"i": 12345}
    forged_hash = compute_hash(prev_hash=victim.prev_hash, log=victim)
    _bypass_trigger(
        "UPDATE audit_auditlog SET details = %s, hash = %s WHERE id = %s",
        ['{"i": 12345}', forged_hash, victim.pk],
    )
    with pytest.raises(CommandError, match=f"record #{chain[3].seq} .*link to the previous record"):
        call_command("audit_verify")
