-- Authorization steps shared by the RPCs, in the order of CONTRACT §5:
-- identity (PT401) -> brand access (42501) -> input (22023). SECURITY INVOKER:
-- they read only what the caller's own policies let them read.

create or replace function dpp.require_caller() returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
    v_user_id uuid := dpp.current_user_id();
begin
    if v_user_id is null and not dpp.is_service() then
        raise exception using
            errcode = 'PT401',
            message = 'Not authenticated: this call needs a signed-in user or the service role',
            detail = 'request.jwt.claims must carry role "authenticated" with a UUID sub, '
            || 'or role "service_role"; an exp claim, if present, must be in the future',
            hint = 'Send a valid access token as "Authorization: Bearer <jwt>".';
    end if;
    return v_user_id;  -- NULL: the service role
end;
$$;
comment on function dpp.require_caller() is
$$Raise PT401 unless the caller is an authenticated user or the service role.
Returns the user id, or NULL for the service role.$$;
revoke execute on function dpp.require_caller() from public;
grant execute on function dpp.require_caller() to anon, authenticated, service_role;

-- Returns the caller's role in the brand, or 'service' for the service role
-- (which may act on every existing brand). A brand the caller is not a member
-- of is Forbidden whether or not it exists.
create or replace function dpp.require_brand_role(_brand_id uuid, _min_role text) returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_user_id uuid := dpp.require_caller();
    v_role text;
begin
    if v_user_id is null then
        if _brand_id is null then
            perform dpp.raise_invalid('brand_id is required', '_brand_id: must not be null');
        end if;
        if not exists (select 1 from dpp.brands as b where b.id = _brand_id) then
            perform dpp.raise_invalid(
                'brand not found', '_brand_id: no brand has this id', 'Create the brand first.'
            );
        end if;
        return 'service';
    end if;

    select m.role into v_role
    from dpp.brand_members as m
    where m.brand_id = _brand_id and m.user_id = v_user_id;

    if v_role is null or dpp.brand_role_rank(v_role) < dpp.brand_role_rank(_min_role) then
        raise exception using
            errcode = '42501',
            message = 'Forbidden: this call needs the ' || _min_role
            || ' role or higher in the brand',
            detail = '_brand_id: the caller is not a member of this brand with role '
            || _min_role || ' or higher',
            hint = 'Ask an owner or admin of the brand for access.';
    end if;
    return v_role;
end;
$$;
comment on function dpp.require_brand_role(uuid, text) is
$$Raise PT401 / 42501 unless the caller holds _min_role or higher in _brand_id.
The service role passes for every existing brand (22023 when it does not exist).
Returns the caller's role, or 'service'.$$;
revoke execute on function dpp.require_brand_role(uuid, text) from public;
grant execute on function dpp.require_brand_role(uuid, text) to authenticated, service_role;

create or replace function dpp.require_product(_brand_id uuid, _product_id uuid) returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    if not exists (
        select 1 from dpp.products as p where p.brand_id = _brand_id and p.id = _product_id
    ) then
        perform dpp.raise_invalid(
            'product not found in this brand',
            '_product_id: no product with this id belongs to the brand',
            'Check _brand_id and _product_id.'
        );
    end if;
end;
$$;
comment on function dpp.require_product(uuid, uuid) is
$$Raise 22023 "product not found in this brand" unless the product belongs to the brand.
The answer is the same whether the product exists elsewhere or not.$$;
revoke execute on function dpp.require_product(uuid, uuid) from public;
grant execute on function dpp.require_product(uuid, uuid) to authenticated, service_role;

create or replace function dpp.require_batch(_brand_id uuid, _batch_id uuid)
returns dpp.batches
language plpgsql
stable
set search_path = ''
as $$
declare
    v_batch dpp.batches;
begin
    select b.* into v_batch
    from dpp.batches as b
    where b.brand_id = _brand_id and b.id = _batch_id;
    if v_batch.id is null then
        perform dpp.raise_invalid(
            'batch not found in this brand',
            '_batch_id: no batch with this id belongs to the brand',
            'Check _brand_id and _batch_id.'
        );
    end if;
    return v_batch;
end;
$$;
comment on function dpp.require_batch(uuid, uuid) is
$$The batch, or 22023 "batch not found in this brand" unless it belongs to the brand.
The answer is the same whether the batch exists elsewhere or not.$$;
revoke execute on function dpp.require_batch(uuid, uuid) from public;
grant execute on function dpp.require_batch(uuid, uuid) to authenticated, service_role;

-- Conflict-safe writes: lock the batch row for the rest of the transaction,
-- then compare its updated_at with the one the caller last saw. Under READ
-- COMMITTED a second writer waits for the lock and then sees the new
-- updated_at, so of two writers with the same expectation exactly one wins.
create or replace function dpp.lock_batch(
    _brand_id uuid, _batch_id uuid, _expected_updated_at timestamptz
) returns dpp.batches
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_batch dpp.batches;
begin
    select b.* into v_batch
    from dpp.batches as b
    where b.brand_id = _brand_id and b.id = _batch_id
    for no key update;
    if v_batch.id is null then
        perform dpp.raise_invalid(
            'batch not found in this brand',
            '_batch_id: no batch with this id belongs to the brand',
            'Check _brand_id and _batch_id.'
        );
    end if;
    if _expected_updated_at is not null and v_batch.updated_at <> _expected_updated_at then
        raise exception using
            errcode = 'PT409',
            message = 'Conflict: the batch was changed after the updated_at you sent',
            -- coalesce: rfc3339 of +/-infinity is NULL, and a NULL detail cannot be raised
            detail = '_expected_updated_at: is '
            || coalesce(dpp.rfc3339(_expected_updated_at), _expected_updated_at::text)
            || ', the batch''s updated_at is now ' || dpp.rfc3339(v_batch.updated_at),
            hint = 'Read the batch again (get_product_batch), then retry with its updated_at.';
    end if;
    return v_batch;
end;
$$;
comment on function dpp.lock_batch(uuid, uuid, timestamptz) is
$$Lock a batch of the brand for update and return it: 22023 when it is not in the brand,
PT409 (HTTP 409, "Conflict") when _expected_updated_at is given and differs.$$;
revoke execute on function dpp.lock_batch(uuid, uuid, timestamptz) from public;
grant execute on function dpp.lock_batch(uuid, uuid, timestamptz) to authenticated, service_role;

-- Serialises membership changes of one brand for the rest of the transaction,
-- so the role and last-owner checks cannot race.
create or replace function dpp.lock_brand_members(_brand_id uuid) returns void
language sql
volatile
set search_path = ''
as $$
    select pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('dpp.brand_members:' || coalesce(_brand_id::text, ''), 0)
    )
$$;
comment on function dpp.lock_brand_members(uuid) is
'Take a transaction-scoped advisory lock on the membership of one brand.';
revoke execute on function dpp.lock_brand_members(uuid) from public;
grant execute on function dpp.lock_brand_members(uuid) to authenticated, service_role;
