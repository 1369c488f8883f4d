-- Batch lifecycle: six statuses, the status a batch had before it was
-- archived (a restore returns to it), and the reason for the current status.
--
-- The transition rules need the old row, so they are a trigger
-- (sql/repeatable/75_batch_lifecycle.sql), not a CHECK. The columns added here
-- are written only by that trigger.

alter table dpp.batches drop constraint batches_status_check;
alter table dpp.batches add constraint batches_status_check check (
    status in ('active', 'on_hold', 'closed', 'recalled', 'destroyed', 'archived')
);

alter table dpp.batches
add column status_before_archive text,
add column status_reason text;

comment on column dpp.batches.status_before_archive is
'The status an archived batch had before it was archived (a restore returns to it); else NULL.';
comment on column dpp.batches.status_reason is
$$Why the batch has its status: the reason given with the latest status change (archive and
restore without a reason keep the previous one), or NULL.$$;

-- Set exactly when the batch is archived, to a status it can be restored to.
alter table dpp.batches add constraint batches_status_before_archive_check check (
    (status = 'archived') = (status_before_archive is not null)
    and status_before_archive in ('active', 'on_hold', 'closed', 'recalled', 'destroyed')
);

-- A reason is a label: 1-500 characters, no control characters (C0, DEL, C1),
-- no other Unicode White_Space at either end.
alter table dpp.batches add constraint batches_status_reason_check check (
    char_length(status_reason) between 1 and 500
    and status_reason !~ '[\u0001-\u001f\u007f-\u009f]'
    and status_reason !~ '^[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'
    and status_reason !~ '[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$'
);
