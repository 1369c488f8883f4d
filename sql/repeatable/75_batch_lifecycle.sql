-- The batch lifecycle and its audit trail, enforced by triggers on the tables,
-- so plain SQL sessions meet the same rules as the RPCs.
--
-- Statuses and transitions (anything else is invalid input, 22023):
--   active    -> on_hold | closed | recalled | archived
--   on_hold   -> active | recalled | destroyed
--   closed    -> active (reopen) | recalled | archived
--   recalled  -> destroyed | archived
--   destroyed -> archived
--   archived  -> the status it had before (restore)
-- A reason is required to move to on_hold, recalled or destroyed, and to
-- reopen (closed -> active). Moving to recalled or destroyed needs the admin
-- or owner role in the brand (42501 for an authenticated caller below it).
-- The metadata of a recalled, destroyed or archived batch is frozen: such a
-- row changes only its status.
--
-- The reason travels in the transaction-local setting dpp.reason (as the
-- claims travel in request.jwt.claims): set_product_batch_status sets it, and
-- a plain SQL session does the same before its UPDATE:
--   select set_config('dpp.reason', 'Supplier recall 2026-04', true);
--   update dpp.batches set status = 'recalled' where …;

create or replace function dpp.batch_next_statuses(_status text, _status_before_archive text)
returns text[]
language sql
immutable
set search_path = ''
as $$
    select
        case _status
            when 'active' then array['on_hold', 'closed', 'recalled', 'archived']
            when 'on_hold' then array['active', 'recalled', 'destroyed']
            when 'closed' then array['active', 'recalled', 'archived']
            when 'recalled' then array['destroyed', 'archived']
            when 'destroyed' then array['archived']
            when 'archived' then array[_status_before_archive]
            else array[]::text []
        end
$$;
comment on function dpp.batch_next_statuses(text, text) is
$$The statuses a batch in _status may move to; an archived batch only back to
_status_before_archive (restore).$$;
revoke execute on function dpp.batch_next_statuses(text, text) from public;
grant execute on function dpp.batch_next_statuses(text, text) to authenticated, service_role;

create or replace function dpp.batch_status_needs_reason(_from text, _to text) returns boolean
language sql
immutable
set search_path = ''
as $$
    select _to in ('on_hold', 'recalled', 'destroyed') or (_from = 'closed' and _to = 'active')
$$;
comment on function dpp.batch_status_needs_reason(text, text) is
'True when moving from _from to _to needs a reason: to on_hold, recalled, destroyed; reopen.';
revoke execute on function dpp.batch_status_needs_reason(text, text) from public;
grant execute on function dpp.batch_status_needs_reason(text, text)
to authenticated, service_role;

-- The reason of the current change: the setting dpp.reason, NULL when unset or empty.
create or replace function dpp.change_reason() returns text
language sql
stable
set search_path = ''
as $$
    select nullif(pg_catalog.current_setting('dpp.reason', true), '')
$$;
comment on function dpp.change_reason() is
'The reason given for the current change (setting dpp.reason), or NULL.';
revoke execute on function dpp.change_reason() from public;
grant execute on function dpp.change_reason() to authenticated, service_role;

-- BEFORE INSERT OR UPDATE on dpp.batches: the lifecycle rules. It also owns
-- status_before_archive and status_reason (the reason for the current status):
-- whatever a statement writes there is replaced.
create or replace function dpp.tg_batches__lifecycle() returns trigger
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_reason text := dpp.change_reason();
    v_frozen constant text [] := array['recalled', 'destroyed', 'archived'];
    v_next text [];
begin
    if tg_op = 'INSERT' then
        if new.status is distinct from 'active' then
            perform dpp.raise_invalid(
                'a batch starts as active',
                'status: a new batch must be active, got ' || coalesce(new.status, 'null'),
                'Create the batch, then change its status.'
            );
        end if;
        new.status_before_archive := null;
        new.status_reason := null;
        return new;
    end if;

    if old.status = any(v_frozen) and new.status is not distinct from old.status then
        perform dpp.raise_invalid(
            'the batch is ' || old.status || '; its metadata is frozen',
            'status: a ' || old.status || ' batch may only change its status',
            'Use set_product_batch_status.'
        );
    end if;
    if (old.status = any(v_frozen) or new.status = any(v_frozen))
        and (
            new.product_id, new.batch_number, new.production_date, new.quantity,
            new.facility_ref, new.attributes
        ) is distinct from (
            old.product_id, old.batch_number, old.production_date, old.quantity,
            old.facility_ref, old.attributes
        ) then
        perform dpp.raise_invalid(
            'the metadata of a recalled, destroyed or archived batch is frozen',
            'status: ' || old.status || ' -> ' || coalesce(new.status, 'null')
            || ' cannot change other fields in the same statement',
            'Change the status alone; update metadata only while the batch is not frozen.'
        );
    end if;

    if new.status is not distinct from old.status then
        new.status_before_archive := old.status_before_archive;
        new.status_reason := old.status_reason;
        return new;
    end if;

    if new.status in ('recalled', 'destroyed')
        and dpp.current_user_id() is not null
        and new.brand_id not in (select dpp.my_brand_ids_with_role('admin')) then
        raise exception using
            errcode = '42501',
            message = 'Forbidden: only an admin or owner may mark a batch ' || new.status,
            detail = 'status: ' || new.status || ' needs the admin role or higher in the brand',
            hint = 'Ask an admin or owner of the brand.';
    end if;

    v_next := dpp.batch_next_statuses(old.status, old.status_before_archive);
    if new.status is null or not new.status = any(v_next) then
        perform dpp.raise_invalid(
            'invalid status transition',
            'status: ' || old.status || ' -> ' || coalesce(new.status, 'null')
            || ' is not allowed; from ' || old.status || ' a batch may move to '
            || pg_catalog.array_to_string(v_next, ', '),
            'See the lifecycle in the README.'
        );
    end if;
    if dpp.batch_status_needs_reason(old.status, new.status) and v_reason is null then
        perform dpp.raise_invalid(
            'a reason is required',
            'reason: ' || old.status || ' -> ' || new.status || ' needs a reason',
            'Give the reason (set_product_batch_status._reason, or the setting dpp.reason).'
        );
    end if;

    new.status_before_archive := case when new.status = 'archived' then old.status end;
    -- Archive and restore without a reason keep the reason of the status the
    -- batch keeps meaning (a restored recall still says why it was recalled).
    new.status_reason := case
        when v_reason is null and 'archived' in (old.status, new.status) then old.status_reason
        else v_reason
    end;
    return new;
end;
$$;
comment on function dpp.tg_batches__lifecycle() is
$$Trigger: enforces the batch lifecycle (transitions, reasons, roles, frozen metadata) and
keeps status_before_archive and status_reason.$$;
revoke execute on function dpp.tg_batches__lifecycle() from public;

create or replace trigger tg_batches__lifecycle
before insert or update on dpp.batches
for each row execute function dpp.tg_batches__lifecycle();

-- AFTER INSERT OR UPDATE on dpp.batches: append one event per row. SECURITY
-- DEFINER because no API role may insert events itself; it writes only what
-- the change itself determines (the row, the claims, the database role).
create or replace function dpp.tg_batches__record_event() returns trigger
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    -- The audited fields: product_id, batch_number, status and the metadata.
    v_new jsonb := pg_catalog.jsonb_build_object(
        'product_id', new.product_id,
        'batch_number', new.batch_number,
        'status', new.status,
        'production_date', new.production_date,
        'quantity', new.quantity,
        'facility_ref', new.facility_ref,
        'attributes', new.attributes
    );
    v_old jsonb;
    v_changes jsonb;
    v_actor_id uuid := dpp.current_user_id();
begin
    if tg_op = 'INSERT' then
        select coalesce(
            pg_catalog.jsonb_object_agg(n.key, pg_catalog.jsonb_build_array(null, n.value)),
            '{}'
        )
        into v_changes
        from pg_catalog.jsonb_each(pg_catalog.jsonb_strip_nulls(v_new)) as n (key, value);
    else
        v_old := pg_catalog.jsonb_build_object(
            'product_id', old.product_id,
            'batch_number', old.batch_number,
            'status', old.status,
            'production_date', old.production_date,
            'quantity', old.quantity,
            'facility_ref', old.facility_ref,
            'attributes', old.attributes
        );
        select coalesce(
            pg_catalog.jsonb_object_agg(n.key, pg_catalog.jsonb_build_array(v_old -> n.key, n.value)),
            '{}'
        )
        into v_changes
        from pg_catalog.jsonb_each(v_new) as n (key, value)
        where n.value <> v_old -> n.key;
    end if;

    insert into dpp.batch_events (
        brand_id, batch_id, occurred_at, action, actor_id, actor_role, changes, reason
    )
    values (
        new.brand_id,
        new.id,
        new.updated_at,
        case
            when tg_op = 'INSERT' then 'create'
            when new.status is distinct from old.status then 'status'
            else 'update'
        end,
        v_actor_id,
        case
            when v_actor_id is not null then 'authenticated'
            when dpp.is_service() then 'service_role'
            -- Inside SECURITY DEFINER current_user is the owner; the role the
            -- session acts as is the setting "role" (none: the login role).
            else coalesce(
                nullif(pg_catalog.current_setting('role'), 'none'), session_user::text
            )
        end,
        v_changes,
        dpp.change_reason()
    );
    return null;
end;
$$;
comment on function dpp.tg_batches__record_event() is
$$Trigger: appends the change of a batch row to dpp.batch_events (action, actor, {field: [old,
new]}, reason). SECURITY DEFINER: the only writer of batch_events.$$;
revoke execute on function dpp.tg_batches__record_event() from public;

create or replace trigger tg_batches__record_event
after insert or update on dpp.batches
for each row execute function dpp.tg_batches__record_event();

-- Append-only: any UPDATE, DELETE or TRUNCATE of batch_events fails, whoever
-- runs it (the owner included). A statement trigger, so it fires even when no
-- row matches.
create or replace function dpp.tg_batch_events__append_only() returns trigger
language plpgsql
volatile
set search_path = ''
as $$
begin
    raise exception using
        errcode = '42501',
        message = 'Forbidden: dpp.batch_events is append-only',
        detail = tg_op || ' on dpp.batch_events is not allowed for anyone',
        hint = 'Events are written by the batch triggers; correct a batch with a new change.';
end;
$$;
comment on function dpp.tg_batch_events__append_only() is
'Trigger: refuses every UPDATE, DELETE and TRUNCATE of dpp.batch_events.';
revoke execute on function dpp.tg_batch_events__append_only() from public;

create or replace trigger tg_batch_events__append_only
before update or delete or truncate on dpp.batch_events
for each statement execute function dpp.tg_batch_events__append_only();
