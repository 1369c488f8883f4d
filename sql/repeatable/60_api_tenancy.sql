-- Tenancy RPCs (CONTRACT §3): brands, members, products.
--
-- Every RPC in public is SECURITY INVOKER (row-level security applies to the
-- caller), pins search_path, and checks identity (PT401), then brand access
-- (42501), then input (22023). PUBLIC may not execute them; the API roles
-- may, and anonymous calls are answered "Not authenticated".
--
-- Membership rules (CONTRACT §3 leaves these details open):
-- * the service role may grant and remove any role in any brand;
-- * an owner may grant any role, change any member's role and remove anyone;
-- * an admin may grant editor/viewer, and change or remove only members whose
--   role is editor or viewer (never an owner or admin, not even themselves);
-- * editors and viewers cannot manage members (also not leave by themselves);
-- * a brand that has an owner keeps one: demoting or removing its last owner
--   is invalid input, except for the service role (the platform admin).

create or replace function public.create_brand(_name text) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_brand dpp.brands;
    v_constraint text;
begin
    if dpp.require_caller() is not null then
        raise exception using
            errcode = '42501',
            message = 'Forbidden: only the service role may create brands',
            detail = 'create_brand: the caller is a user, not the service role',
            hint = 'Create brands from a trusted backend with the service role key.';
    end if;
    if _name is null then
        perform dpp.raise_invalid('name is required', '_name: must not be null');
    end if;
    perform dpp.check_label(_name, '_name', 200);

    begin
        insert into dpp.brands (name) values (_name)
        returning * into v_brand;
    exception
        when check_violation then
            -- Backstop only: the checks above reject these values first.
            get stacked diagnostics v_constraint = constraint_name;
            perform dpp.raise_invalid(
                'the brand breaks a table rule', 'constraint ' || coalesce(v_constraint, '?')
            );
    end;

    return pg_catalog.jsonb_build_object(
        'id', v_brand.id,
        'name', v_brand.name,
        'created_at', dpp.rfc3339(v_brand.created_at)
    );
end;
$$;
comment on function public.create_brand(text) is
$doc$Create a brand (tenant).

Needs the service role.
_name: display name: 1-200 characters, no control characters, no leading or trailing whitespace.
Returns {id, name, created_at}. The brand has no members yet: add an owner with
add_brand_member.$doc$;
revoke execute on function public.create_brand(text) from public;
grant execute on function public.create_brand(text) to anon, authenticated, service_role;

create or replace function public.add_brand_member(
    _brand_id uuid, _user_id uuid, _role text
) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_caller_role text;
    v_current_role text;
    v_member dpp.brand_members;
begin
    perform dpp.require_caller();
    perform dpp.lock_brand_members(_brand_id);
    v_caller_role := dpp.require_brand_role(_brand_id, 'admin');

    if _user_id is null then
        perform dpp.raise_invalid('user_id is required', '_user_id: must not be null');
    end if;
    if _role is null or dpp.brand_role_rank(_role) is null then
        perform dpp.raise_invalid(
            'role must be owner, admin, editor or viewer',
            '_role: ' || coalesce('"' || _role || '"', 'null') || ' is not a brand role',
            'Send one of "owner", "admin", "editor", "viewer".'
        );
    end if;

    select m.role into v_current_role
    from dpp.brand_members as m
    where m.brand_id = _brand_id and m.user_id = _user_id;

    if v_caller_role = 'admin' and (
        _role in ('owner', 'admin') or v_current_role in ('owner', 'admin')
    ) then
        raise exception using
            errcode = '42501',
            message = 'Forbidden: an admin may grant and change only the editor and viewer roles',
            detail = '_role: granting "' || _role || '"'
            || coalesce(' to a member who is "' || v_current_role || '"', '')
            || ' needs the owner role',
            hint = 'Ask an owner of the brand.';
    end if;
    if v_current_role = 'owner' and _role <> 'owner' and v_caller_role <> 'service' and not exists (
        select 1 from dpp.brand_members as m
        where m.brand_id = _brand_id and m.role = 'owner' and m.user_id <> _user_id
    ) then
        perform dpp.raise_invalid(
            'a brand must keep at least one owner',
            '_role: this member is the last owner of the brand',
            'Make another member owner first.'
        );
    end if;

    begin
        insert into dpp.brand_members as m (brand_id, user_id, role)
        values (_brand_id, _user_id, _role)
        on conflict (brand_id, user_id) do update set role = excluded.role
        returning * into v_member;
    exception
        when insufficient_privilege then
            -- Backstop only: the row-level policies agree with the checks above.
            raise exception using
                errcode = '42501',
                message = 'Forbidden: the caller may not grant this role',
                detail = '_role: refused by the brand_members row-level security policy';
    end;

    return pg_catalog.jsonb_build_object(
        'brand_id', v_member.brand_id, 'user_id', v_member.user_id, 'role', v_member.role
    );
end;
$$;
comment on function public.add_brand_member(uuid, uuid, text) is
$doc$Grant a user a role in a brand, or change the role they have (upsert).

Needs the owner or admin role in the brand, or the service role.
_brand_id: the brand.
_user_id: the user (the sub of their JWT).
_role: owner, admin, editor or viewer. The service role and owners may grant any role;
  admins only editor or viewer, and only to users who are not owners or admins.
  The last owner of a brand cannot be demoted (except by the service role).
Returns {brand_id, user_id, role}.$doc$;
revoke execute on function public.add_brand_member(uuid, uuid, text) from public;
grant execute on function public.add_brand_member(uuid, uuid, text)
to anon, authenticated, service_role;

create or replace function public.remove_brand_member(_brand_id uuid, _user_id uuid)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_caller_role text;
    v_current_role text;
begin
    perform dpp.require_caller();
    perform dpp.lock_brand_members(_brand_id);
    v_caller_role := dpp.require_brand_role(_brand_id, 'admin');

    if _user_id is null then
        perform dpp.raise_invalid('user_id is required', '_user_id: must not be null');
    end if;

    select m.role into v_current_role
    from dpp.brand_members as m
    where m.brand_id = _brand_id and m.user_id = _user_id;

    if v_current_role is null then
        perform dpp.raise_invalid(
            'user is not a member of this brand',
            '_user_id: has no role in the brand',
            'Check _brand_id and _user_id.'
        );
    end if;
    if v_caller_role = 'admin' and v_current_role in ('owner', 'admin') then
        raise exception using
            errcode = '42501',
            message = 'Forbidden: an admin may remove only editors and viewers',
            detail = '_user_id: removing a member who is "' || v_current_role
            || '" needs the owner role',
            hint = 'Ask an owner of the brand.';
    end if;
    if v_current_role = 'owner' and v_caller_role <> 'service' and not exists (
        select 1 from dpp.brand_members as m
        where m.brand_id = _brand_id and m.role = 'owner' and m.user_id <> _user_id
    ) then
        perform dpp.raise_invalid(
            'a brand must keep at least one owner',
            '_user_id: this member is the last owner of the brand',
            'Make another member owner first.'
        );
    end if;

    delete from dpp.brand_members as m
    where m.brand_id = _brand_id and m.user_id = _user_id;
    if not found then
        -- Backstop only: the row-level policies agree with the checks above.
        raise exception using
            errcode = '42501',
            message = 'Forbidden: the caller may not remove this member',
            detail = '_user_id: refused by the brand_members row-level security policy';
    end if;

    return pg_catalog.jsonb_build_object('brand_id', _brand_id, 'user_id', _user_id);
end;
$$;
comment on function public.remove_brand_member(uuid, uuid) is
$doc$Remove a user from a brand.

Needs the owner or admin role in the brand, or the service role.
_brand_id: the brand.
_user_id: the member to remove. The service role and owners may remove anyone; admins only
  editors and viewers. The last owner cannot be removed (except by the service role).
Returns {brand_id, user_id}.$doc$;
revoke execute on function public.remove_brand_member(uuid, uuid) from public;
grant execute on function public.remove_brand_member(uuid, uuid)
to anon, authenticated, service_role;

create or replace function public.create_product(
    _brand_id uuid, _name text, _gtin text default null, _attributes jsonb default '{}'
) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_gtin text;
    v_attributes jsonb := coalesce(_attributes, '{}');
    v_product dpp.products;
    v_constraint text;
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'editor');

    if _name is null then
        perform dpp.raise_invalid('name is required', '_name: must not be null');
    end if;
    perform dpp.check_label(_name, '_name', 200);
    v_gtin := dpp.normalize_gtin(_gtin, '_gtin');
    perform dpp.check_attributes(v_attributes, '_attributes');

    begin
        insert into dpp.products (brand_id, name, gtin, attributes)
        values (_brand_id, _name, v_gtin, v_attributes)
        returning * into v_product;
    exception
        when unique_violation then
            raise exception using
                errcode = '23505',
                message = 'Invalid input: gtin is already used by another product of this brand',
                detail = '_gtin: must be unique within the brand',
                hint = 'Use the existing product, or check the GTIN.';
        when check_violation then
            -- Backstop only: the checks above reject these values first.
            get stacked diagnostics v_constraint = constraint_name;
            perform dpp.raise_invalid(
                'the product breaks a table rule', 'constraint ' || coalesce(v_constraint, '?')
            );
    end;

    return pg_catalog.jsonb_build_object(
        'id', v_product.id,
        'brand_id', v_product.brand_id,
        'name', v_product.name,
        'gtin', v_product.gtin,
        'created_at', dpp.rfc3339(v_product.created_at)
    );
end;
$$;
comment on function public.create_product(uuid, text, text, jsonb) is
$doc$Create a product of a brand.

Needs the editor role or higher in the brand, or the service role.
_brand_id: the brand.
_name: display name: 1-200 characters, no control characters, no leading or trailing whitespace.
_gtin: optional GTIN-8/12/13/14 with a valid GS1 check digit; stored zero-padded to 14 digits;
  unique within the brand.
_attributes: optional JSON object, at most 64 KiB as text; omitted or null means {}.
Returns {id, brand_id, name, gtin, created_at}.$doc$;
revoke execute on function public.create_product(uuid, text, text, jsonb) from public;
grant execute on function public.create_product(uuid, text, text, jsonb)
to anon, authenticated, service_role;
