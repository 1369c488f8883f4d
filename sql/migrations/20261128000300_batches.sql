-- Production batches (GS1 batch/lot, AI 10) of a brand's products.
--
-- Every field rule of CONTRACT §4 is also a CHECK here, so a plain SQL session
-- cannot store what the RPCs would refuse. The RPCs validate first and raise
-- clean 22023 errors; these constraints are the backstop.
create table dpp.batches (
    brand_id uuid not null,
    id uuid not null default gen_random_uuid(),
    product_id uuid not null,
    -- Stored exactly as given; compared byte-wise (case-sensitive).
    batch_number text collate "C" not null,
    status text not null default 'active',
    production_date date,
    quantity integer,
    facility_ref text,
    attributes jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    created_by uuid,
    updated_by uuid,
    primary key (brand_id, id),
    constraint batches_product_fkey foreign key (brand_id, product_id)
    references dpp.products (brand_id, id),
    -- Also serves as the index of batches_product_fkey (leading columns).
    constraint batches_batch_number_key unique (brand_id, product_id, batch_number),
    -- GS1 AI (10): 1-20 characters of CSET 82, and not "." or ".." (those
    -- collapse as Digital Link path segments).
    constraint batches_batch_number_check check (
        batch_number ~ '^[A-Za-z0-9!"%&''()*+,./:;<=>?_-]{1,20}$'
        and batch_number not in ('.', '..')
    ),
    -- The lifecycle may widen this list later.
    constraint batches_status_check check (status in ('active')),
    constraint batches_production_date_check check (
        production_date between date '0001-01-01' and date '9999-12-31'
    ),
    constraint batches_quantity_check check (quantity > 0),
    -- No control characters (C0, DEL, C1), no other Unicode White_Space at either end.
    constraint batches_facility_ref_check check (
        char_length(facility_ref) between 1 and 128
        and facility_ref !~ '[\u0001-\u001f\u007f-\u009f]'
        and facility_ref !~ '^[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'
        and facility_ref !~ '[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$'
    ),
    constraint batches_attributes_check check (
        jsonb_typeof(attributes) = 'object'
        and octet_length(attributes::text) <= 65536
    )
);
comment on table dpp.batches is
'A production batch (GS1 lot) of a product; the scope for minting a Digital Product Passport.';

create trigger tg_batches__audit_columns
before insert or update on dpp.batches
for each row execute function dpp.tg__audit_columns();

alter table dpp.batches enable row level security;
