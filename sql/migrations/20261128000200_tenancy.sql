-- Tenancy tables: brands, their members, and their products.
--
-- Every tenant table carries brand_id, and its keys and foreign keys include
-- it. Every foreign key has an index led by its columns. Row-level security is
-- enabled here; policies and grants live in sql/repeatable/30_table_access.sql.

-- Audit columns (created_at, updated_at, created_by, updated_by) are kept by
-- this trigger, so neither a caller nor a plain SQL session can forge them.
-- updated_at moves forward on every update, even twice in one transaction.
-- created_by / updated_by are the JWT sub of an authenticated caller, or NULL
-- (service role, or a session without claims).
create function dpp.tg__audit_columns() returns trigger
language plpgsql
volatile
set search_path = ''
as $$
begin
    if tg_op = 'INSERT' then
        new.created_at := pg_catalog.now();
        new.updated_at := new.created_at;
        new.created_by := dpp.current_user_id();
        new.updated_by := new.created_by;
    else
        new.created_at := old.created_at;
        new.created_by := old.created_by;
        new.updated_at := greatest(
            pg_catalog.now(), old.updated_at + interval '1 microsecond'
        );
        new.updated_by := dpp.current_user_id();
    end if;
    return new;
end;
$$;
comment on function dpp.tg__audit_columns() is
'Trigger: stamps created_at/by on insert; on update moves updated_at forward, sets updated_by.';
-- Triggers need no EXECUTE privilege to fire.
revoke execute on function dpp.tg__audit_columns() from public;

create table dpp.brands (
    id uuid primary key default gen_random_uuid(),
    name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    created_by uuid,
    updated_by uuid,
    -- Labels: 1-200 characters, no control characters (C0, DEL, C1: this covers
    -- tab, newline and U+0085), and no other Unicode White_Space at either end.
    constraint brands_name_check check (
        char_length(name) between 1 and 200
        and name !~ '[\u0001-\u001f\u007f-\u009f]'
        and name !~ '^[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'
        and name !~ '[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$'
    )
);
comment on table dpp.brands is
'A brand (tenant). Owns products; users reach it through brand_members.';

create table dpp.brand_members (
    brand_id uuid not null references dpp.brands (id),
    user_id uuid not null,
    role text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    created_by uuid,
    updated_by uuid,
    primary key (brand_id, user_id),
    constraint brand_members_role_check check (role in ('owner', 'admin', 'editor', 'viewer'))
);
comment on table dpp.brand_members is
'One role per user per brand: owner > admin > editor > viewer. user_id is the JWT sub.';
-- "Which brands is this user in?" is asked by every policy.
create index brand_members_user_id_idx on dpp.brand_members (user_id);

create table dpp.products (
    brand_id uuid not null references dpp.brands (id),
    id uuid not null default gen_random_uuid(),
    name text not null,
    gtin text,
    attributes jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    created_by uuid,
    updated_by uuid,
    primary key (brand_id, id),
    -- A GTIN identifies one trade item: at most one product per brand carries it.
    constraint products_brand_id_gtin_key unique (brand_id, gtin),
    constraint products_name_check check (
        char_length(name) between 1 and 200
        and name !~ '[\u0001-\u001f\u007f-\u009f]'
        and name !~ '^[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'
        and name !~ '[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$'
    ),
    -- GTIN-8/12/13/14 normalised to 14 digits; the last one is the GS1 mod-10
    -- check digit (weights 3,1,3,… from the right of the 13 data digits).
    constraint products_gtin_check check (
        case
            when gtin is null then true
            when gtin ~ '^[0-9]{14}$'
                then (
                    10 - (
                        3 * (
                            substr(gtin, 1, 1)::integer + substr(gtin, 3, 1)::integer
                            + substr(gtin, 5, 1)::integer + substr(gtin, 7, 1)::integer
                            + substr(gtin, 9, 1)::integer + substr(gtin, 11, 1)::integer
                            + substr(gtin, 13, 1)::integer
                        )
                        + substr(gtin, 2, 1)::integer + substr(gtin, 4, 1)::integer
                        + substr(gtin, 6, 1)::integer + substr(gtin, 8, 1)::integer
                        + substr(gtin, 10, 1)::integer + substr(gtin, 12, 1)::integer
                    ) % 10
                ) % 10 = substr(gtin, 14, 1)::integer
            else false
        end
    ),
    constraint products_attributes_check check (
        jsonb_typeof(attributes) = 'object'
        and octet_length(attributes::text) <= 65536
    )
);
comment on table dpp.products is 'A product of a brand; batches are production runs of it.';

create trigger tg_brands__audit_columns
before insert or update on dpp.brands
for each row execute function dpp.tg__audit_columns();

create trigger tg_brand_members__audit_columns
before insert or update on dpp.brand_members
for each row execute function dpp.tg__audit_columns();

create trigger tg_products__audit_columns
before insert or update on dpp.products
for each row execute function dpp.tg__audit_columns();

alter table dpp.brands enable row level security;
alter table dpp.brand_members enable row level security;
alter table dpp.products enable row level security;
