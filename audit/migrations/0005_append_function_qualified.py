"""``audit_append`` with every name in it schema-qualified, and no search path of its own.

It runs as the audit tables' owner (``SECURITY DEFINER``). 0004 gave it ``SET search_path =
pg_catalog, public``, which leaves the caller's temporary schema searched *first* for type
names (PostgreSQL searches ``pg_temp`` first unless the path lists it). So the application
role could make a temporary domain named ``text`` whose CHECK calls a function of its own,
and the append's ``::text`` cast ran that function as the owner: free to rewrite the trail
it may otherwise only append to.

Now every relation, function, operator and type in the body names its schema, so nothing
the caller puts in its path or its temporary schema is ever looked up
(tests/security/test_definer_functions.py plants all of them). Without a ``SET`` clause,
a call no longer saves and restores the search path either, about 25 µs of an append.
The chain is hashed exactly as before.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_append(
    p_content text, p_created_at timestamptz, p_actor_type text, p_actor_user_id bigint,
    p_actor_label text, p_action text, p_target_type text, p_target_id text, p_target_repr text,
    p_company_id bigint, p_company_name text, p_details jsonb, p_request_id text, p_ip inet
) RETURNS TABLE (r_id bigint, r_seq bigint, r_prev_hash text, r_hash text)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    h_seq pg_catalog.int8;
    h_hash pg_catalog.text;
    h_prev pg_catalog.text;
BEGIN
    FOR attempt IN 1..2 LOOP
        -- Locks the head row until the caller's transaction ends: appenders queue here.
        UPDATE public.audit_chainhead AS c
           SET seq = c.seq OPERATOR(pg_catalog.+) 1,
               prev_hash = c.hash,
               hash = pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                   c.hash OPERATOR(pg_catalog.||) (c.seq OPERATOR(pg_catalog.+) 1)::pg_catalog.text
                   OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) p_content, 'UTF8')), 'hex')
         WHERE c.id OPERATOR(pg_catalog.=) 1
        RETURNING c.seq, c.hash, c.prev_hash INTO h_seq, h_hash, h_prev;
        IF FOUND THEN
            RETURN QUERY
            INSERT INTO public.audit_auditlog AS a (
                seq, prev_hash, hash, created_at, actor_type, actor_user_id, actor_label, action,
                target_type, target_id, target_repr, company_id, company_name, details, request_id, ip
            ) VALUES (
                h_seq, h_prev, h_hash, p_created_at, p_actor_type, p_actor_user_id,
                p_actor_label, p_action, p_target_type, p_target_id, p_target_repr, p_company_id,
                p_company_name, p_details, p_request_id, p_ip
            )
            RETURNING a.id, a.seq, a.prev_hash::pg_catalog.text, a.hash::pg_catalog.text;
            RETURN;
        END IF;
        INSERT INTO public.audit_chainhead (id, seq, hash, prev_hash)
        VALUES (1, 0, pg_catalog.repeat('0', 64), pg_catalog.repeat('0', 64))
        ON CONFLICT (id) DO NOTHING;
    END LOOP;
    RAISE EXCEPTION 'audit chain head could not be created';
END
$$;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def keep_function(apps, schema_editor):
    """Migrating back keeps it: 0004's body is the unsafe one."""


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_append_function")]

    operations = [migrations.RunPython(create_function, keep_function)]
