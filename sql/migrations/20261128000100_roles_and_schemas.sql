-- Roles, schemas and default privileges for dpp-batches.

-- The field rules (GS1 CSET 82, Unicode control and space characters) are
-- written for UTF-8 text.
do $encoding$
begin
    if pg_catalog.getdatabaseencoding() <> 'UTF8' then
        raise exception 'dpp-batches needs a UTF8 database; this one is %',
            pg_catalog.getdatabaseencoding()
            using hint = 'Create the database with ENCODING ''UTF8''.';
    end if;
end;
$encoding$;

-- API roles are cluster-wide: create each one only if it is missing, with
-- Supabase's attributes, and never alter a role that already exists.
-- Several databases of one cluster may migrate at the same moment, so a
-- concurrent creator (duplicate_object / unique_violation) is tolerated.
do $roles$
declare
    v_role text;
    v_attributes text;
begin
    foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
        continue when exists (
            select 1 from pg_catalog.pg_roles where rolname = v_role
        );
        v_attributes := case v_role
            when 'service_role' then 'nologin inherit bypassrls'
            else 'nologin inherit'
        end;
        begin
            execute pg_catalog.format('create role %I %s', v_role, v_attributes);
        exception
            when duplicate_object or unique_violation then
                null;  -- created by a concurrent migration of another database
            when insufficient_privilege then
                -- Only a superuser may grant BYPASSRLS. service_role still works
                -- without it: every dpp table has explicit service_role policies.
                begin
                    execute pg_catalog.format('create role %I nologin inherit', v_role);
                exception
                    when duplicate_object or unique_violation then
                        null;
                end;
        end;
    end loop;
end;
$roles$;

-- Deny by default: functions created by the migration owner from now on are
-- not executable by PUBLIC; each definition grants EXECUTE explicitly.
alter default privileges revoke execute on functions from public;

-- The exposed schema holds RPCs only. PostgreSQL 15 already withholds CREATE
-- from PUBLIC; older servers did not (CVE-2018-1058).
revoke create on schema public from public;
grant usage on schema public to anon, authenticated, service_role;

-- Private schema: tables, helpers and types. Never listed in db-schemas.
create schema dpp;
comment on schema dpp is
'dpp-batches private schema: tenant tables and helpers. Never exposed over the API.';
revoke all on schema dpp from public;
-- anon needs USAGE only to reach the identity helpers, so an anonymous call
-- is answered "Not authenticated" instead of a permission error.
grant usage on schema dpp to anon, authenticated, service_role;
