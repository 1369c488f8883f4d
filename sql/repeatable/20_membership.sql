-- Membership helpers for row-level security.
--
-- SECURITY DEFINER so that policies on dpp.brand_members can ask "which
-- brands is the caller in?" without recursing into their own policies. They
-- run as the migration owner (who owns the tables, so RLS does not apply),
-- pin search_path, live in the private schema, and answer only about the
-- caller (dpp.current_user_id()). anon may not execute them.

create or replace function dpp.brand_role_rank(_role text) returns integer
language sql
immutable
set search_path = ''
as $$
    select
        case _role
            when 'viewer' then 1
            when 'editor' then 2
            when 'admin' then 3
            when 'owner' then 4
        end
$$;
comment on function dpp.brand_role_rank(text) is
'Rank of a brand role: viewer 1 < editor 2 < admin 3 < owner 4; NULL for anything else.';
revoke execute on function dpp.brand_role_rank(text) from public;
grant execute on function dpp.brand_role_rank(text) to authenticated, service_role;

-- plpgsql, not SQL: a SECURITY DEFINER SQL function is never inlined and is
-- planned again on every call; plpgsql keeps its plan for the session.
create or replace function dpp.my_brand_ids() returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select m.brand_id
    from dpp.brand_members as m
    where m.user_id = (select dpp.current_user_id());
end;
$$;
comment on function dpp.my_brand_ids() is
'Ids of the brands the authenticated caller is a member of (any role). Empty for everyone else.';
revoke execute on function dpp.my_brand_ids() from public;
grant execute on function dpp.my_brand_ids() to authenticated, service_role;

create or replace function dpp.my_brand_ids_with_role(_min_role text) returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    -- The roles at or above _min_role, computed once (not a rank call per row).
    v_roles text[] := case _min_role
        when 'viewer' then array['viewer', 'editor', 'admin', 'owner']
        when 'editor' then array['editor', 'admin', 'owner']
        when 'admin' then array['admin', 'owner']
        when 'owner' then array['owner']
        else array[]::text[]
    end;
begin
    return query
    select m.brand_id
    from dpp.brand_members as m
    where m.user_id = (select dpp.current_user_id()) and m.role = any(v_roles);
end;
$$;
comment on function dpp.my_brand_ids_with_role(text) is
'Ids of the brands where the authenticated caller holds _min_role or a higher role.';
revoke execute on function dpp.my_brand_ids_with_role(text) from public;
grant execute on function dpp.my_brand_ids_with_role(text) to authenticated, service_role;
