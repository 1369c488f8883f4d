-- The Batches RPCs (spec/batches-api.txt, CONTRACT §4). SECURITY INVOKER,
-- search_path pinned; identity (PT401) -> brand access (42501) -> input (22023).
-- A duplicate batch_number within the product is 23505 (HTTP 409); a stale
-- _expected_updated_at is PT409 (HTTP 409, "Conflict").

create or replace function public.create_product_batch(
    _brand_id uuid,
    _product_id uuid,
    _batch_number text,
    _production_date date default null,
    _quantity integer default null,
    _facility_ref text default null,
    _attributes jsonb default null
) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_attributes jsonb := coalesce(_attributes, '{}');
    v_batch dpp.batches;
    v_constraint text;
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'editor');

    perform dpp.require_product(_brand_id, _product_id);
    perform dpp.check_batch_number(_batch_number, '_batch_number');
    perform dpp.check_production_date(_production_date, '_production_date');
    perform dpp.check_quantity(_quantity, '_quantity');
    perform dpp.check_label(_facility_ref, '_facility_ref', 128);
    perform dpp.check_attributes(v_attributes, '_attributes');

    begin
        insert into dpp.batches (
            brand_id, product_id, batch_number, production_date, quantity, facility_ref, attributes
        )
        values (
            _brand_id, _product_id, _batch_number, _production_date, _quantity, _facility_ref,
            v_attributes
        )
        returning * into v_batch;
    exception
        when unique_violation then
            raise exception using
                errcode = '23505',
                message = 'Invalid input: batch_number already exists for this product',
                detail = '_batch_number: must be unique within the product (exact, case-sensitive)',
                hint = 'Choose another batch number, or update the existing batch.';
        when check_violation or not_null_violation or foreign_key_violation then
            -- Backstop only: the checks above reject these values first.
            get stacked diagnostics v_constraint = constraint_name;
            perform dpp.raise_invalid(
                'the batch breaks a table rule', 'constraint ' || coalesce(v_constraint, '?')
            );
    end;

    return dpp.batch_json(v_batch);
end;
$$;
comment on function public.create_product_batch(uuid, uuid, text, date, integer, text, jsonb) is
$doc$Create a production batch (GS1 lot) of a product.

Needs the editor role or higher in the brand, or the service role.
_brand_id: the brand that owns the product.
_product_id: the product; must belong to _brand_id.
_batch_number: GS1 AI (10) batch/lot number: 1-20 characters of CSET 82
  (A-Z a-z 0-9 ! " % & ' ( ) * + , - . / : ; < = > ? _), not "." or "..";
  stored exactly as given; unique within the product (case-sensitive).
_production_date: optional ISO date (YYYY-MM-DD).
_quantity: optional integer greater than 0.
_facility_ref: optional facility reference: 1-128 characters, no control characters,
  no leading or trailing whitespace.
_attributes: optional JSON object, at most 64 KiB as text; omitted or null means {}.
Returns the batch as get_product_batch does (every field plus digital_link); status is
"active".$doc$;
revoke execute on function public.create_product_batch(uuid, uuid, text, date, integer, text, jsonb)
from public;
grant execute on function public.create_product_batch(uuid, uuid, text, date, integer, text, jsonb)
to anon, authenticated, service_role;

create or replace function public.list_product_batches(_brand_id uuid, _product_id uuid)
returns table (
    id uuid,
    brand_id uuid,
    product_id uuid,
    batch_number text,
    status text,
    production_date date,
    quantity integer,
    facility_ref text,
    attributes jsonb,
    created_at text,
    updated_at text
)
language plpgsql
stable
set search_path = ''
as $$
#variable_conflict use_column
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'viewer');
    perform dpp.require_product(_brand_id, _product_id);

    return query
    select
        b.id,
        b.brand_id,
        b.product_id,
        b.batch_number::text,
        b.status,
        b.production_date,
        b.quantity,
        b.facility_ref,
        b.attributes,
        -- dpp.rfc3339 written out: a function with SET search_path is never
        -- inlined, and two calls per row cost more than the scan.
        pg_catalog.to_char(
            pg_catalog.timezone('UTC', b.created_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
        ),
        pg_catalog.to_char(
            pg_catalog.timezone('UTC', b.updated_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
        )
    from dpp.batches as b
    where b.brand_id = _brand_id and b.product_id = _product_id
    order by b.created_at desc, b.id desc;
end;
$$;
comment on function public.list_product_batches(uuid, uuid) is
$doc$List the batches of a product, newest first.

Needs any role in the brand, or the service role.
_brand_id: the brand that owns the product.
_product_id: the product; must belong to _brand_id.
Returns a set of rows ordered by created_at desc, id desc, so PostgREST filters, order,
limit/offset and Prefer: count=exact apply. created_at and updated_at are RFC 3339 UTC text
of fixed width (text order is time order).$doc$;
revoke execute on function public.list_product_batches(uuid, uuid) from public;
grant execute on function public.list_product_batches(uuid, uuid)
to anon, authenticated, service_role;

-- _expected_updated_at was added after the first release of this RPC: drop the
-- old signature so that no overload remains (PostgREST could not choose).
drop function if exists public.update_product_batch(uuid, uuid, jsonb);

create or replace function public.update_product_batch(
    _brand_id uuid, _batch_id uuid, _patch jsonb, _expected_updated_at timestamptz default null
) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_unknown text;
    v_value jsonb;
    v_batch_number text;
    v_production_date date;
    v_quantity integer;
    v_facility_ref text;
    v_attributes jsonb;
    v_batch dpp.batches;
    v_constraint text;
begin
    perform dpp.require_caller();
    perform dpp.require_brand_role(_brand_id, 'editor');

    if _patch is null or pg_catalog.jsonb_typeof(_patch) <> 'object' then
        perform dpp.raise_invalid(
            '_patch must be a JSON object',
            '_patch: must be an object of the fields to change, got '
            || coalesce(pg_catalog.jsonb_typeof(_patch), 'null'),
            'Send e.g. {"quantity": 600}.'
        );
    end if;
    if _patch = '{}'::jsonb then
        perform dpp.raise_invalid(
            '_patch is empty',
            '_patch: must name at least one field to change',
            'Allowed keys: batch_number, production_date, quantity, facility_ref, attributes.'
        );
    end if;
    select pg_catalog.string_agg(k.key, ', ' order by k.key) into v_unknown
    from pg_catalog.jsonb_object_keys(_patch) as k (key)
    where k.key not in (
        'batch_number', 'production_date', 'quantity', 'facility_ref', 'attributes'
    );
    if v_unknown is not null then
        perform dpp.raise_invalid(
            '_patch has unknown keys',
            '_patch: unknown key(s) ' || v_unknown,
            'Allowed keys: batch_number, production_date, quantity, facility_ref, attributes.'
        );
    end if;

    if _patch ? 'batch_number' then
        v_value := _patch -> 'batch_number';
        if pg_catalog.jsonb_typeof(v_value) <> 'string' then
            perform dpp.raise_invalid(
                'batch_number must be a string',
                '_patch.batch_number: must be a JSON string (it cannot be cleared), got '
                || pg_catalog.jsonb_typeof(v_value),
                'Send the new batch number as a string, or leave the key out.'
            );
        end if;
        v_batch_number := v_value #>> '{}';
        perform dpp.check_batch_number(v_batch_number, '_patch.batch_number');
    end if;

    if _patch ? 'production_date' then
        v_value := _patch -> 'production_date';
        if pg_catalog.jsonb_typeof(v_value) = 'string'
            and (v_value #>> '{}') ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' then
            begin
                v_production_date := (v_value #>> '{}')::date;
            exception
                when datetime_field_overflow or invalid_datetime_format then
                    v_production_date := null;
            end;
        end if;
        if pg_catalog.jsonb_typeof(v_value) <> 'null' and v_production_date is null then
            perform dpp.raise_invalid(
                'production_date must be a calendar date',
                '_patch.production_date: must be an ISO 8601 date string (YYYY-MM-DD) or null',
                'Send a date such as "2026-01-15", or null to clear it.'
            );
        end if;
        perform dpp.check_production_date(v_production_date, '_patch.production_date');
    end if;

    if _patch ? 'quantity' then
        v_value := _patch -> 'quantity';
        if pg_catalog.jsonb_typeof(v_value) not in ('number', 'null') then
            perform dpp.raise_invalid(
                'quantity must be a positive integer',
                '_patch.quantity: must be a JSON number or null, got '
                || pg_catalog.jsonb_typeof(v_value),
                'Send a whole number greater than 0, or null to clear it.'
            );
        end if;
        if pg_catalog.jsonb_typeof(v_value) = 'number' then
            perform dpp.check_quantity(v_value::numeric, '_patch.quantity');
            v_quantity := v_value::numeric::integer;
        end if;
    end if;

    if _patch ? 'facility_ref' then
        v_value := _patch -> 'facility_ref';
        if pg_catalog.jsonb_typeof(v_value) not in ('string', 'null') then
            perform dpp.raise_invalid(
                'facility_ref must be a string',
                '_patch.facility_ref: must be a JSON string or null, got '
                || pg_catalog.jsonb_typeof(v_value),
                'Send the facility reference as a string, or null to clear it.'
            );
        end if;
        v_facility_ref := v_value #>> '{}';
        perform dpp.check_label(v_facility_ref, '_patch.facility_ref', 128);
    end if;

    if _patch ? 'attributes' then
        v_attributes := _patch -> 'attributes';
        perform dpp.check_attributes(v_attributes, '_patch.attributes');
    end if;

    v_batch := dpp.lock_batch(_brand_id, _batch_id, _expected_updated_at);
    if v_batch.status in ('recalled', 'destroyed', 'archived') then
        perform dpp.raise_invalid(
            'the batch is ' || v_batch.status || '; its metadata is frozen',
            '_batch_id: the metadata of a recalled, destroyed or archived batch cannot change',
            case
                when v_batch.status = 'archived'
                    then 'Restore the batch with set_product_batch_status first.'
                else 'Record corrections in a new batch.'
            end
        );
    end if;

    begin
        update dpp.batches as b
        set
            batch_number = case
                when _patch ? 'batch_number' then v_batch_number else b.batch_number
            end,
            production_date = case
                when _patch ? 'production_date' then v_production_date else b.production_date
            end,
            quantity = case when _patch ? 'quantity' then v_quantity else b.quantity end,
            facility_ref = case
                when _patch ? 'facility_ref' then v_facility_ref else b.facility_ref
            end,
            attributes = case when _patch ? 'attributes' then v_attributes else b.attributes end
        where b.brand_id = _brand_id and b.id = _batch_id
        returning b.* into v_batch;
    exception
        when unique_violation then
            raise exception using
                errcode = '23505',
                message = 'Invalid input: batch_number already exists for this product',
                detail = '_patch.batch_number: must be unique within the product '
                || '(exact, case-sensitive)',
                hint = 'Choose another batch number.';
        when check_violation or not_null_violation then
            -- Backstop only: the checks above reject these values first.
            get stacked diagnostics v_constraint = constraint_name;
            perform dpp.raise_invalid(
                'the batch breaks a table rule', 'constraint ' || coalesce(v_constraint, '?')
            );
    end;

    return dpp.batch_json(v_batch);
end;
$$;
comment on function public.update_product_batch(uuid, uuid, jsonb, timestamptz) is
$doc$Update a batch's metadata with a JSON merge patch.

Needs the editor role or higher in the brand, or the service role.
_brand_id: the brand that owns the batch.
_batch_id: the batch; must belong to _brand_id.
_patch: JSON object of the fields to change: at least one of batch_number, production_date,
  quantity, facility_ref, attributes (rules as in create_product_batch); any other key is
  invalid. null clears production_date, quantity or facility_ref; batch_number and attributes
  cannot be null; attributes replaces the whole object.
_expected_updated_at: optional; the updated_at the caller last saw. When given and the batch
  has changed since, nothing is written and the call fails with 409 (PT409, "Conflict").
A recalled, destroyed or archived batch cannot be updated (invalid input).
Returns the whole batch, as get_product_batch does; updated_at always moves forward.$doc$;
revoke execute on function public.update_product_batch(uuid, uuid, jsonb, timestamptz) from public;
grant execute on function public.update_product_batch(uuid, uuid, jsonb, timestamptz)
to anon, authenticated, service_role;
