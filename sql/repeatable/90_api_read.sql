-- The read path: one batch by id or by its natural key (product, batch_number),
-- and the brand-wide listing with filters and keyset pagination.
--
-- list_brand_batches pages newest first by (created_at, id). Each row carries
-- an opaque cursor (base64url of "created_at|id"); the next page starts
-- strictly after the cursor passed as _after, so rows never repeat or go
-- missing, whatever is inserted meanwhile. The query is built per call with
-- only the filters given, so each combination is planned on its own and the
-- indexes of 20261128000600_batch_read_path.sql serve it.

create or replace function dpp.batch_cursor(_created_at timestamptz, _id uuid) returns text
language sql
immutable
strict
set search_path = ''
as $$
    select pg_catalog.translate(
        pg_catalog.encode(
            pg_catalog.convert_to(dpp.rfc3339(_created_at) || '|' || _id::text, 'UTF8'), 'base64'
        ),
        E'+/=\n', '-_'
    )
$$;
comment on function dpp.batch_cursor(timestamptz, uuid) is
'Opaque keyset cursor of a batch row: base64url (no padding) of "created_at|id".';
revoke execute on function dpp.batch_cursor(timestamptz, uuid) from public;
grant execute on function dpp.batch_cursor(timestamptz, uuid) to authenticated, service_role;

-- The inverse of dpp.batch_cursor; 22023 naming _field for anything else.
create or replace function dpp.parse_batch_cursor(
    _cursor text, _field text, out created_at timestamptz, out id uuid
)
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_text text;
begin
    if _cursor ~ '^[A-Za-z0-9_-]{1,200}$' then
        begin
            v_text := pg_catalog.convert_from(
                pg_catalog.decode(
                    pg_catalog.rpad(
                        pg_catalog.translate(_cursor, '-_', '+/'),
                        (pg_catalog.length(_cursor) + 3) / 4 * 4,
                        '='
                    ),
                    'base64'
                ),
                'UTF8'
            );
            if v_text ~ (
                '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z'
                || '\|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
            ) then
                created_at := pg_catalog.split_part(v_text, '|', 1)::timestamptz;
                id := pg_catalog.split_part(v_text, '|', 2)::uuid;
                return;
            end if;
        exception
            when others then
                null;  -- not base64, not UTF-8, or not a timestamp: answered below
        end;
    end if;
    perform dpp.raise_invalid(
        'cursor is not valid',
        _field || ': must be the cursor of a row returned by list_brand_batches',
        'Pass the cursor column of the last row of the previous page, or null for page one.'
    );
end;
$$;
comment on function dpp.parse_batch_cursor(text, text) is
$$Decode a cursor made by dpp.batch_cursor into (created_at, id); 22023 naming _field for
anything else.$$;
revoke execute on function dpp.parse_batch_cursor(text, text) from public;
grant execute on function dpp.parse_batch_cursor(text, text) to authenticated, service_role;

create or replace function public.get_product_batch(_brand_id uuid, _batch_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'viewer');
    return dpp.batch_json(dpp.require_batch(_brand_id, _batch_id));
end;
$$;
comment on function public.get_product_batch(uuid, uuid) is
$doc$Get one batch by id, with its GS1 Digital Link.

Needs any role in the brand, or the service role.
_brand_id: the brand that owns the batch.
_batch_id: the batch; must belong to _brand_id (else invalid input, "not found in this brand").
Returns {id, brand_id, product_id, batch_number, status, status_reason, status_before_archive,
production_date, quantity, facility_ref, attributes, created_at, updated_at, created_by,
updated_by, digital_link}. digital_link is /01/{gtin}/10/{batch_number percent-encoded per
RFC 3986} when the product has a GTIN, else null.$doc$;
revoke execute on function public.get_product_batch(uuid, uuid) from public;
grant execute on function public.get_product_batch(uuid, uuid)
to anon, authenticated, service_role;

create or replace function public.find_product_batch(
    _brand_id uuid, _product_id uuid, _batch_number text
) returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_batch dpp.batches;
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'viewer');
    perform dpp.require_product(_brand_id, _product_id);
    perform dpp.check_batch_number(_batch_number, '_batch_number');

    select b.* into v_batch
    from dpp.batches as b
    where
        b.brand_id = _brand_id
        and b.product_id = _product_id
        and b.batch_number = _batch_number;
    if v_batch.id is null then
        perform dpp.raise_invalid(
            'batch not found in this brand',
            '_batch_number: the product has no batch with this number (exact, case-sensitive)',
            'Check _product_id and _batch_number.'
        );
    end if;
    return dpp.batch_json(v_batch);
end;
$$;
comment on function public.find_product_batch(uuid, uuid, text) is
$doc$Find one batch by its natural key: the product and the batch number.

Needs any role in the brand, or the service role.
_brand_id: the brand that owns the product.
_product_id: the product; must belong to _brand_id.
_batch_number: the GS1 AI (10) batch/lot number, matched exactly (case-sensitive).
Returns the batch as get_product_batch does, with its digital_link; a batch number the
product does not have is invalid input ("not found in this brand").$doc$;
revoke execute on function public.find_product_batch(uuid, uuid, text) from public;
grant execute on function public.find_product_batch(uuid, uuid, text)
to anon, authenticated, service_role;

create or replace function public.list_brand_batches(
    _brand_id uuid,
    _status text default null,
    _produced_from date default null,
    _produced_to date default null,
    _facility_ref text default null,
    _limit integer default 50,
    _after text default null
)
returns table (
    id uuid,
    brand_id uuid,
    product_id uuid,
    batch_number text,
    status text,
    status_reason text,
    status_before_archive text,
    production_date date,
    quantity integer,
    facility_ref text,
    attributes jsonb,
    created_at text,
    updated_at text,
    created_by uuid,
    updated_by uuid,
    digital_link text,
    cursor text
)
language plpgsql
stable
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_after_at timestamptz;
    v_after_id uuid;
    v_sql text;
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'viewer');

    if _status is not null
        and _status not in ('active', 'on_hold', 'closed', 'recalled', 'destroyed', 'archived') then
        perform dpp.raise_invalid(
            'status must be a batch status',
            '_status: "' || _status || '" is not a batch status',
            'Send one of active, on_hold, closed, recalled, destroyed, archived, or null for all.'
        );
    end if;
    perform dpp.check_production_date(_produced_from, '_produced_from');
    perform dpp.check_production_date(_produced_to, '_produced_to');
    if _produced_from > _produced_to then
        perform dpp.raise_invalid(
            'production date range is empty',
            '_produced_from: is after _produced_to',
            'Send _produced_from <= _produced_to (both inclusive).'
        );
    end if;
    perform dpp.check_label(_facility_ref, '_facility_ref', 128);
    if _limit is null or _limit not between 1 and 500 then
        perform dpp.raise_invalid(
            'limit must be 1-500',
            '_limit: is ' || coalesce(_limit::text, 'null') || '; allowed 1-500',
            'Send a page size from 1 to 500 (default 50).'
        );
    end if;
    if _after is not null then
        select c.created_at, c.id into v_after_at, v_after_id
        from dpp.parse_batch_cursor(_after, '_after') as c;
    end if;

    -- Only fixed text and $n placeholders go into the statement.
    v_sql := 'select b.id, b.brand_id, b.product_id, b.batch_number::text, b.status,'
        || ' b.status_reason, b.status_before_archive, b.production_date, b.quantity,'
        || ' b.facility_ref, b.attributes, dpp.rfc3339(b.created_at), dpp.rfc3339(b.updated_at),'
        || ' b.created_by, b.updated_by,'
        || ' dpp.digital_link((select p.gtin from dpp.products as p'
        || ' where p.brand_id = b.brand_id and p.id = b.product_id), b.batch_number),'
        || ' dpp.batch_cursor(b.created_at, b.id)'
        || ' from dpp.batches as b where b.brand_id = $1'
        || case when _status is null then '' else ' and b.status = $2' end
        || case when _produced_from is null then '' else ' and b.production_date >= $3' end
        || case when _produced_to is null then '' else ' and b.production_date <= $4' end
        || case when _facility_ref is null then '' else ' and b.facility_ref = $5' end
        || case when _after is null then '' else ' and (b.created_at, b.id) < ($6, $7)' end
        || ' order by b.created_at desc, b.id desc limit $8';
    return query execute v_sql
    using _brand_id, _status, _produced_from, _produced_to, _facility_ref,
    v_after_at, v_after_id, _limit;
end;
$$;
comment on function public.list_brand_batches(uuid, text, date, date, text, integer, text) is
$doc$List a brand's batches newest first, filtered, one keyset page at a time.

Needs any role in the brand, or the service role.
_brand_id: the brand.
_status: optional; only batches in this status (active, on_hold, closed, recalled, destroyed,
  archived). null lists every status.
_produced_from: optional; only batches with production_date on or after this date.
_produced_to: optional; only batches with production_date on or before this date.
_facility_ref: optional; only batches with exactly this facility_ref.
_limit: page size, 1-500 (default 50).
_after: optional; the cursor of the last row of the previous page. null starts at the newest.
Returns a set of rows ordered by created_at desc, id desc: the batch as get_product_batch
returns it, plus cursor, an opaque string. Pass the last row's cursor as _after for the next
page: pages never repeat or skip a row, also while batches are being created. A page costs
the same at any depth (served by indexes); use these arguments, not PostgREST filters, on
large brands.$doc$;
revoke execute on function public.list_brand_batches(uuid, text, date, date, text, integer, text)
from public;
grant execute on function public.list_brand_batches(uuid, text, date, date, text, integer, text)
to anon, authenticated, service_role;
