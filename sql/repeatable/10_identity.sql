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

-- plpgsql, not SQL: an SQL function with SET search_path is never inlined and
-- is planned again on every call (and the former SQL body evaluated
-- jwt_claims() once per reference, up to 6 times); plpgsql keeps its plans and
-- each helper below parses the claims once.
create or replace function dpp.jwt_role() returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_claims jsonb := dpp.jwt_claims();
    v_exp jsonb := v_claims -> 'exp';
begin
    -- exp, when present, must be a JSON number in the future. Separate IFs:
    -- the cast must run only on a number.
    if v_exp is not null then
        if pg_catalog.jsonb_typeof(v_exp) <> 'number' then
            return null;
        end if;
        if v_exp::numeric <= extract(epoch from pg_catalog.now()) then
            return null;
        end if;
    end if;
    return v_claims ->> 'role';
end;
$$;
comment on function dpp.jwt_role() is
'The claims'' role when the claims parse and exp is absent or in the future; else NULL.';
revoke execute on function dpp.jwt_role() from public;
grant execute on function dpp.jwt_role() to anon, authenticated, service_role;

create or replace function dpp.current_user_id() returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
    v_sub text := dpp.jwt_claims() ->> 'sub';
begin
    if dpp.jwt_role() is distinct from 'authenticated' then
        return null;
    end if;
    if v_sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        return v_sub::uuid;
    end if;
    return null;
end;
$$;
comment on function dpp.current_user_id() is
$$The authenticated user's id (claims sub), or NULL.
NULL unless role is authenticated, sub is a UUID and exp is absent or in the future.$$;
revoke execute on function dpp.current_user_id() from public;
grant execute on function dpp.current_user_id() to anon, authenticated, service_role;

create or replace function dpp.is_service() returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
    return coalesce(dpp.jwt_role() = 'service_role', false);
end;
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
