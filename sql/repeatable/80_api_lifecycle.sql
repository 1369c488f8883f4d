-- Lifecycle RPCs: change a batch's status, read a batch's history. The rules
-- themselves are the triggers of 75_batch_lifecycle.sql; these RPCs check them
-- first, in the order identity (PT401) -> brand access (42501) -> input
-- (22023), to give clean messages. A stale _expected_updated_at is PT409.

create or replace function public.set_product_batch_status(
    _brand_id uuid,
    _batch_id uuid,
    _status text,
    _reason text default null,
    _expected_updated_at timestamptz default null
) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_batch dpp.batches;
    v_next text [];
    v_constraint text;
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'editor');

    if _status is null
        or _status not in ('active', 'on_hold', 'closed', 'recalled', 'destroyed', 'archived') then
        perform dpp.raise_invalid(
            'status must be a batch status',
            '_status: ' || coalesce('"' || _status || '"', 'null') || ' is not a batch status',
            'Send one of active, on_hold, closed, recalled, destroyed, archived.'
        );
    end if;
    if _status in ('recalled', 'destroyed') then
        perform dpp.require_brand_role(_brand_id, 'admin');
    end if;
    perform dpp.check_label(_reason, '_reason', 500);

    v_batch := dpp.lock_batch(_brand_id, _batch_id, _expected_updated_at);
    if v_batch.status = _status then
        perform dpp.raise_invalid(
            'the batch is already ' || _status,
            '_status: the batch''s status is already ' || _status,
            'Read the batch to see its status.'
        );
    end if;
    v_next := dpp.batch_next_statuses(v_batch.status, v_batch.status_before_archive);
    if not _status = any(v_next) then
        perform dpp.raise_invalid(
            'invalid status transition',
            '_status: ' || v_batch.status || ' -> ' || _status || ' is not allowed; from '
            || v_batch.status || ' a batch may move to '
            || pg_catalog.array_to_string(v_next, ', '),
            case
                when v_batch.status = 'archived'
                    then 'An archived batch can only be restored to the status it had before.'
                else 'Move the batch through an allowed status first.'
            end
        );
    end if;
    if dpp.batch_status_needs_reason(v_batch.status, _status) and _reason is null then
        perform dpp.raise_invalid(
            'a reason is required',
            '_reason: ' || v_batch.status || ' -> ' || _status || ' needs a reason',
            'Say why, e.g. "Supplier recall 2026-04".'
        );
    end if;

    -- The lifecycle trigger reads the reason from this setting (and so does the
    -- audit trail); clear it afterwards so that nothing else in this
    -- transaction inherits it.
    perform pg_catalog.set_config('dpp.reason', coalesce(_reason, ''), true);
    begin
        update dpp.batches as b
        set status = _status
        where b.brand_id = _brand_id and b.id = _batch_id
        returning b.* into v_batch;
    exception
        when check_violation then
            -- Backstop only: the checks above reject these values first.
            get stacked diagnostics v_constraint = constraint_name;
            perform dpp.raise_invalid(
                'the batch breaks a table rule', 'constraint ' || coalesce(v_constraint, '?')
            );
    end;
    perform pg_catalog.set_config('dpp.reason', '', true);

    return dpp.batch_json(v_batch);
end;
$$;
comment on function public.set_product_batch_status(uuid, uuid, text, text, timestamptz) is
$doc$Change a batch's lifecycle status (hold, close, reopen, recall, destroy, archive, restore).

Needs the editor role or higher in the brand, or the service role; moving a batch to recalled
or destroyed needs the admin or owner role.
_brand_id: the brand that owns the batch.
_batch_id: the batch; must belong to _brand_id.
_status: the new status. Allowed moves: active -> on_hold, closed, recalled, archived;
  on_hold -> active, recalled, destroyed; closed -> active (reopen), recalled, archived;
  recalled -> destroyed, archived; destroyed -> archived; archived -> the status it had
  before (restore). Anything else is invalid input.
_reason: why; 1-500 characters, no control characters, no leading or trailing whitespace.
  Required for on_hold, recalled, destroyed and reopen (closed -> active).
_expected_updated_at: optional; the updated_at the caller last saw. When given and the batch
  has changed since, nothing is written and the call fails with 409 (PT409, "Conflict").
The change is recorded in the batch's history. A recalled, destroyed or archived batch keeps
its metadata frozen. Returns the batch as get_product_batch does.$doc$;
revoke execute on function public.set_product_batch_status(uuid, uuid, text, text, timestamptz)
from public;
grant execute on function public.set_product_batch_status(uuid, uuid, text, text, timestamptz)
to anon, authenticated, service_role;

create or replace function public.list_product_batch_history(_brand_id uuid, _batch_id uuid)
returns table (
    id bigint,
    batch_id uuid,
    occurred_at text,
    action text,  -- noqa: RF04
    actor_id uuid,
    actor_role text,
    changes jsonb,
    reason text
)
language plpgsql
stable
set search_path = ''
as $$
#variable_conflict use_column
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'viewer');
    perform dpp.require_batch(_brand_id, _batch_id);

    return query
    select
        e.id,
        e.batch_id,
        dpp.rfc3339(e.occurred_at),
        e.action,
        e.actor_id,
        e.actor_role,
        e.changes,
        e.reason
    from dpp.batch_events as e
    where e.brand_id = _brand_id and e.batch_id = _batch_id
    order by e.occurred_at desc, e.id desc;
end;
$$;
comment on function public.list_product_batch_history(uuid, uuid) is
$doc$List the history of a batch (its audit trail), newest first.

Needs any role in the brand, or the service role.
_brand_id: the brand that owns the batch.
_batch_id: the batch; must belong to _brand_id.
Returns one row per create, update and status change, through an RPC or plain SQL:
{id, batch_id, occurred_at, action (create | update | status), actor_id (the user's id, or
null), actor_role (authenticated, service_role, or the database role), changes ({field:
[old, new]}; old is null on create), reason}. occurred_at is the batch's updated_at after
the change. Events can never be changed or deleted.$doc$;
revoke execute on function public.list_product_batch_history(uuid, uuid) from public;
grant execute on function public.list_product_batch_history(uuid, uuid)
to anon, authenticated, service_role;
