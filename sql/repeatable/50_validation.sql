-- Input validation for the RPCs: each helper raises 22023 "Invalid input: …"
-- with a detail naming the field (as the caller sent it) and the rule, and a
-- hint saying how to fix it. The same rules are CHECK constraints on the
-- tables (the backstop); these give the clean messages. The check helpers are
-- IMMUTABLE; raise_invalid is VOLATILE so that no constant call is ever folded
-- (raised) at plan time.

create or replace function dpp.raise_invalid(
    _message text, _detail text, _hint text default null
) returns void
language plpgsql
volatile  -- never IMMUTABLE: the planner could fold a constant call early
set search_path = ''
as $$
begin
    if _hint is null then
        raise exception using
            errcode = '22023', message = 'Invalid input: ' || _message, detail = _detail;
    end if;
    raise exception using
        errcode = '22023', message = 'Invalid input: ' || _message, detail = _detail, hint = _hint;
end;
$$;
comment on function dpp.raise_invalid(text, text, text) is
'Raise SQLSTATE 22023 with message "Invalid input: <_message>", the given detail and hint.';
revoke execute on function dpp.raise_invalid(text, text, text) from public;
grant execute on function dpp.raise_invalid(text, text, text) to authenticated, service_role;

create or replace function dpp.code_point(_char text) returns text
language sql
immutable
strict
set search_path = ''
as $$
    select 'U+' || pg_catalog.upper(
        pg_catalog.lpad(pg_catalog.to_hex(pg_catalog.ascii(_char)), 4, '0')
    )
$$;
comment on function dpp.code_point(text) is 'The Unicode code point of a character as U+XXXX.';
revoke execute on function dpp.code_point(text) from public;
grant execute on function dpp.code_point(text) to authenticated, service_role;

-- A short text label: 1.._max characters, no control characters, no leading or
-- trailing whitespace (Unicode White_Space). NULL is the caller's business.
create or replace function dpp.check_label(_value text, _field text, _max integer) returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_bad text;
    v_space constant text :=
        '[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]';
begin
    if _value is null then
        return;
    end if;
    if pg_catalog.char_length(_value) not between 1 and _max then
        perform dpp.raise_invalid(
            _field || ' must be 1-' || _max || ' characters',
            _field || ': has ' || pg_catalog.char_length(_value)
            || ' characters; allowed 1-' || _max,
            'Send between 1 and ' || _max || ' characters, or null where the field is optional.'
        );
    end if;
    v_bad := pg_catalog.substring(_value, '[\u0001-\u001f\u007f-\u009f]');
    if v_bad is not null then
        perform dpp.raise_invalid(
            _field || ' must not contain control characters',
            _field || ': character ' || pg_catalog.strpos(_value, v_bad)
            || ' is the control character ' || dpp.code_point(v_bad),
            'Remove tabs, line breaks and other control characters.'
        );
    end if;
    if _value ~ ('^' || v_space) or _value ~ (v_space || '$') then
        perform dpp.raise_invalid(
            _field || ' must not start or end with whitespace',
            _field || ': leading or trailing whitespace is not allowed',
            'Trim the value before sending it.'
        );
    end if;
end;
$$;
comment on function dpp.check_label(text, text, integer) is
$$Validate a label (names, facility_ref): 1.._max characters, no control characters,
no leading or trailing whitespace. NULL passes.$$;
revoke execute on function dpp.check_label(text, text, integer) from public;
grant execute on function dpp.check_label(text, text, integer) to authenticated, service_role;

-- GS1 AI (10) batch/lot: 1-20 characters of CSET 82, not "." or "..".
create or replace function dpp.check_batch_number(_value text, _field text) returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_bad text;
    v_hint constant text := 'Use 1-20 characters from A-Z a-z 0-9 '
        || '! " % & '' ( ) * + , - . / : ; < = > ? _ (GS1 CSET 82).';
begin
    if _value is null then
        perform dpp.raise_invalid(
            'batch_number is required', _field || ': must not be null', v_hint
        );
    end if;
    if pg_catalog.char_length(_value) not between 1 and 20 then
        perform dpp.raise_invalid(
            'batch_number must be 1-20 characters',
            _field || ': has ' || pg_catalog.char_length(_value)
            || ' characters; GS1 AI (10) allows 1-20',
            v_hint
        );
    end if;
    v_bad := pg_catalog.substring(_value, '[^A-Za-z0-9!"%&''()*+,./:;<=>?_-]');
    if v_bad is not null then
        perform dpp.raise_invalid(
            'batch_number contains a character outside GS1 CSET 82',
            _field || ': character ' || pg_catalog.strpos(_value, v_bad) || ' ('
            || dpp.code_point(v_bad) || ') is not in GS1 CSET 82',
            v_hint
        );
    end if;
    if _value in ('.', '..') then
        perform dpp.raise_invalid(
            'batch_number must not be "." or ".."',
            _field || ': "." and ".." collapse as GS1 Digital Link path segments',
            'Choose a batch number other than "." or "..".'
        );
    end if;
end;
$$;
comment on function dpp.check_batch_number(text, text) is
'Validate a GS1 AI (10) batch/lot number: 1-20 characters of CSET 82, not "." or "..".';
revoke execute on function dpp.check_batch_number(text, text) from public;
grant execute on function dpp.check_batch_number(text, text) to authenticated, service_role;

create or replace function dpp.check_quantity(_value numeric, _field text) returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
    if _value is not null and (
        _value <> pg_catalog.trunc(_value) or _value < 1 or _value > 2147483647
    ) then
        perform dpp.raise_invalid(
            'quantity must be a positive integer',
            _field || ': must be a whole number from 1 to 2147483647, or null',
            'Send a whole number greater than 0, or null for "unknown".'
        );
    end if;
end;
$$;
comment on function dpp.check_quantity(numeric, text) is
'Validate a quantity: NULL, or a whole number from 1 to 2147483647.';
revoke execute on function dpp.check_quantity(numeric, text) from public;
grant execute on function dpp.check_quantity(numeric, text) to authenticated, service_role;

create or replace function dpp.check_production_date(_value date, _field text) returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
    if _value is not null and _value not between date '0001-01-01' and date '9999-12-31' then
        perform dpp.raise_invalid(
            'production_date must be a calendar date',
            _field || ': must be an ISO 8601 date (YYYY-MM-DD) between 0001-01-01 and 9999-12-31',
            'Send a date such as "2026-01-15", or null.'
        );
    end if;
end;
$$;
comment on function dpp.check_production_date(date, text) is
'Validate a production date: NULL, or a finite date from 0001-01-01 to 9999-12-31.';
revoke execute on function dpp.check_production_date(date, text) from public;
grant execute on function dpp.check_production_date(date, text) to authenticated, service_role;

create or replace function dpp.check_attributes(_value jsonb, _field text) returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_size integer;
begin
    if _value is null or pg_catalog.jsonb_typeof(_value) <> 'object' then
        perform dpp.raise_invalid(
            'attributes must be a JSON object',
            _field || ': must be a JSON object, got '
            || coalesce(pg_catalog.jsonb_typeof(_value), 'null'),
            'Send an object such as {"color": "red"}; {} for none.'
        );
    end if;
    v_size := pg_catalog.octet_length(_value::text);
    if v_size > 65536 then
        perform dpp.raise_invalid(
            'attributes must be at most 64 KiB',
            _field || ': is ' || v_size || ' bytes as JSON text; the limit is 65536',
            'Store large documents elsewhere and reference them from attributes.'
        );
    end if;
end;
$$;
comment on function dpp.check_attributes(jsonb, text) is
'Validate attributes: a JSON object of at most 65536 bytes as text.';
revoke execute on function dpp.check_attributes(jsonb, text) from public;
grant execute on function dpp.check_attributes(jsonb, text) to authenticated, service_role;

-- GTIN-8/12/13/14 with a valid GS1 mod-10 check digit, normalised to 14 digits.
create or replace function dpp.normalize_gtin(_value text, _field text) returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_gtin text;
    v_sum integer := 0;
begin
    if _value is null then
        return null;
    end if;
    if _value !~ '^([0-9]{8}|[0-9]{12}|[0-9]{13}|[0-9]{14})$' then
        perform dpp.raise_invalid(
            'gtin must be a GTIN-8, -12, -13 or -14',
            _field || ': must be 8, 12, 13 or 14 digits and nothing else',
            'Send the GTIN digits without spaces or letters, or null.'
        );
    end if;
    v_gtin := pg_catalog.lpad(_value, 14, '0');
    for i in 1..13 loop
        -- weights 3,1,3,... from the left of 14 digits = from the right of the data digits
        v_sum := v_sum
            + pg_catalog.substr(v_gtin, i, 1)::integer * (case when i % 2 = 1 then 3 else 1 end);
    end loop;
    if (10 - v_sum % 10) % 10 <> pg_catalog.substr(v_gtin, 14, 1)::integer then
        perform dpp.raise_invalid(
            'gtin has a wrong check digit',
            _field || ': the GS1 check digit should be ' || (10 - v_sum % 10) % 10,
            'Check the GTIN for typing errors.'
        );
    end if;
    return v_gtin;
end;
$$;
comment on function dpp.normalize_gtin(text, text) is
$$Validate a GTIN-8/12/13/14 (GS1 check digit); return it zero-padded to 14 digits.
NULL stays NULL.$$;
revoke execute on function dpp.normalize_gtin(text, text) from public;
grant execute on function dpp.normalize_gtin(text, text) to authenticated, service_role;

-- The JSON a batch RPC returns: every field of the batch plus its GS1 Digital
-- Link path (NULL when the product has no GTIN). Timestamps are RFC 3339 UTC
-- text, dates YYYY-MM-DD. STABLE: it reads the product's GTIN (as the caller).
create or replace function dpp.batch_json(_batch dpp.batches) returns jsonb
language sql
stable
set search_path = ''
as $$
    select pg_catalog.jsonb_build_object(
        'id', (_batch).id,
        'brand_id', (_batch).brand_id,
        'product_id', (_batch).product_id,
        'batch_number', (_batch).batch_number,
        'status', (_batch).status,
        'status_reason', (_batch).status_reason,
        'status_before_archive', (_batch).status_before_archive,
        'production_date', (_batch).production_date,
        'quantity', (_batch).quantity,
        'facility_ref', (_batch).facility_ref,
        'attributes', (_batch).attributes,
        'created_at', pg_catalog.to_char(
            pg_catalog.timezone('UTC', (_batch).created_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
        ),
        'updated_at', pg_catalog.to_char(
            pg_catalog.timezone('UTC', (_batch).updated_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
        ),
        'created_by', (_batch).created_by,
        'updated_by', (_batch).updated_by,
        'digital_link', dpp.digital_link(
            (
                select p.gtin from dpp.products as p
                where p.brand_id = (_batch).brand_id and p.id = (_batch).product_id
            ),
            (_batch).batch_number
        )
    )
$$;
comment on function dpp.batch_json(dpp.batches) is
'A batch as the batch RPCs return it: every field plus digital_link.';
revoke execute on function dpp.batch_json(dpp.batches) from public;
grant execute on function dpp.batch_json(dpp.batches) to authenticated, service_role;
