"""The append function (PostgreSQL): advance the chain head, hash, insert, in one call.

``SECURITY DEFINER``: it runs as the role that owns the audit tables (the one migrating),
so the application role needs no right to write the head itself: it may call this and
read. A missing head row (after a table flush) is created here too.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_append(
    p_content text, p_created_at timestamptz, p_actor_type text, p_actor_user_id bigint,
    p_actor_label text, p_action text, p_target_type text, p_target_id text, p_target_repr text,
    p_company_id bigint, p_company_name text, p_details jsonb, p_request_id text, p_ip inet
) RETURNS TABLE (r_id bigint, r_seq bigint, r_prev_hash text, r_hash text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    head record;
BEGIN
    FOR attempt IN 1..2 LOOP
        -- Locks the head row until the caller's transaction ends: appenders queue here.
        UPDATE audit_chainhead AS c
           SET seq = c.seq + 1,
               prev_hash = c.hash,
               hash = encode(sha256(convert_to(c.hash || (c.seq + 1)::text || '|' || p_content, 'UTF8')), 'hex')
         WHERE c.id = 1
        RETURNING c.seq, c.hash, c.prev_hash INTO head;
        IF FOUND THEN
            RETURN QUERY
            INSERT INTO audit_auditlog AS a (
                seq, prev_hash, hash, created_at, actor_type, actor_user_id, actor_label, action,
                target_type, target_id, target_repr, company_id, company_name, details, request_id, ip
            ) VALUES (
                head.seq, head.prev_hash, head.hash, p_created_at, p_actor_type, p_actor_user_id,
                p_actor_label, p_action, p_target_type, p_target_id, p_target_repr, p_company_id,
                p_company_name, p_details, p_request_id, p_ip
            )
            RETURNING a.id, a.seq, a.prev_hash::text, a.hash::text;
            RETURN;
        END IF;
        INSERT INTO audit_chainhead (id, seq, hash, prev_hash)
        VALUES (1, 0, repeat('0', 64), repeat('0', 64))
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
    """Migrating back keeps it: the tables it writes are the same at 0003, and the
    application role can append only through it."""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chainhead_prev_hash_action_index")]

    operations = [migrations.RunPython(create_function, keep_function)]
