-- Identity helpers: who is calling, read only from request.jwt.claims
-- (CONTRACT §2). Tiny, STABLE, never throw. They expose nothing but the
-- caller's own claims, so every API role may execute them; policies call them
-- wrapped as (select dpp.current_user_id()) so they run once per statement.

create or replace function dpp.jwt_claims() returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_raw text := nullif(pg_catalog.current_setting('request.jwt.claims', true), '');
    v_claims jsonb;
begin
    if v_raw is null then
        return null;
    end if;
    begin
        v_claims := v_raw::jsonb;
    exception
        when others then
            return null;  -- malformed claims identify nobody
    end;
    if pg_catalog.jsonb_typeof(v_claims) is distinct from 'object' then
        return null;
    end if;
    return v_claims;
end;
$$;
comment on function dpp.jwt_claims() is
'The request''s JWT claims as a jsonb object, or NULL when absent or malformed.';
revoke execute on function dpp.jwt_claims() from public;
grant execute on function dpp.jwt_claims() to anon, authenticated, service_role;

create or replace function dpp.jwt_role() returns text
language sql
stable
set search_path = ''
as $$
    -- CASE, not AND: the exp cast must run only on a JSON number.
    select
        case
            when c.claims -> 'exp' is null then c.claims ->> 'role'
            when pg_catalog.jsonb_typeof(c.claims -> 'exp') <> 'number' then null
            when (c.claims -> 'exp')::numeric > extract(epoch from pg_catalog.now())
                then c.claims ->> 'role'
        end
    from (select dpp.jwt_claims() as claims) as c
$$;
comment on function dpp.jwt_role() is
'The claims'' role when the claims parse and exp is absent or in the future; else NULL.';
revoke execute on function dpp.jwt_role() from public;
grant execute on function dpp.jwt_role() to anon, authenticated, service_role;

create or replace function dpp.current_user_id() returns uuid
language sql
stable
set search_path = ''
as $$
    select
        case
            when c.sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                then c.sub::uuid
        end
    from (select dpp.jwt_claims() ->> 'sub' as sub) as c
    where dpp.jwt_role() = 'authenticated'
$$;
comment on function dpp.current_user_id() is
$$The authenticated user's id (claims sub), or NULL.
NULL unless role is authenticated, sub is a UUID and exp is absent or in the future.$$;
revoke execute on function dpp.current_user_id() from public;
grant execute on function dpp.current_user_id() to anon, authenticated, service_role;

create or replace function dpp.is_service() returns boolean
language sql
stable
set search_path = ''
as $$
    select coalesce(dpp.jwt_role() = 'service_role', false)
$$;
comment on function dpp.is_service() is
'True when the claims carry role service_role (platform admin) and exp is absent or in the future.';
revoke execute on function dpp.is_service() from public;
grant execute on function dpp.is_service() to anon, authenticated, service_role;

create or replace function dpp.rfc3339(_ts timestamptz) returns text
language sql
immutable
strict
set search_path = ''
as $$
    select pg_catalog.to_char(
        pg_catalog.timezone('UTC', _ts), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
    )
$$;
comment on function dpp.rfc3339(timestamptz) is
$$RFC 3339 UTC text of fixed width (YYYY-MM-DDTHH:MM:SS.ffffffZ).
Independent of the session TimeZone; text order is time order.$$;
revoke execute on function dpp.rfc3339(timestamptz) from public;
grant execute on function dpp.rfc3339(timestamptz) to authenticated, service_role;
