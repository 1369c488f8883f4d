-- The audit trail of batches: one row per create, update and status change,
-- whether it came through an RPC or plain SQL.
--
-- Rows are written only by the trigger dpp.tg_batches__record_event (a
-- SECURITY DEFINER function owned by the migration owner). The table is
-- append-only: a statement trigger refuses UPDATE, DELETE and TRUNCATE (for
-- the owner too), and no API role holds those privileges. Triggers, policies
-- and grants live in sql/repeatable/.
create table dpp.batch_events (
    brand_id uuid not null,
    id bigint generated always as identity,
    batch_id uuid not null,
    -- The batch's updated_at after the change (its created_at for a create).
    occurred_at timestamptz not null,
    -- create, update or status (a status change, possibly with other fields).
    action text not null,  -- noqa: RF04
    -- The JWT sub of an authenticated caller; NULL for everyone else.
    actor_id uuid,
    -- "authenticated" or "service_role" when the claims identify the caller,
    -- else the database role that made the change (e.g. a psql session).
    actor_role text not null,
    -- {field: [old, new]} of every field that changed; old is null on create.
    changes jsonb not null,
    reason text,
    primary key (brand_id, id),
    -- A batch with history cannot be deleted.
    constraint batch_events_batch_fkey foreign key (brand_id, batch_id)
    references dpp.batches (brand_id, id),
    constraint batch_events_action_check check (action in ('create', 'update', 'status')),
    constraint batch_events_actor_role_check check (char_length(actor_role) between 1 and 63),
    constraint batch_events_changes_check check (jsonb_typeof(changes) = 'object'),
    constraint batch_events_reason_check check (
        char_length(reason) between 1 and 500
        and reason !~ '[\u0001-\u001f\u007f-\u009f]'
        and reason !~ '^[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'
        and reason !~ '[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$'
    )
);
comment on table dpp.batch_events is
'Append-only audit trail of dpp.batches: who changed what, when and why.';

-- The history of one batch, newest first; also the index of batch_events_batch_fkey.
create index batch_events_batch_idx
on dpp.batch_events (brand_id, batch_id, occurred_at desc, id desc);

alter table dpp.batch_events enable row level security;
