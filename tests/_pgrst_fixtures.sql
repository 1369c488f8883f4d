-- Fixture functions for tests/test_postgrest.py: one per return shape and error path that
-- PostgrestClient must reproduce. Applied by a superuser to a scratch database whose API roles
-- (anon, authenticated, service_role) exist; called only through the authenticator.

create schema pgrst_fixture;
grant usage on schema pgrst_fixture to anon, authenticated, service_role;

create table pgrst_fixture.item (
    id integer primary key,
    name text not null,
    score integer,
    tag text
);
insert into pgrst_fixture.item (id, name, score, tag) values
    (1, 'alpha', 10, 'x'),
    (2, 'beta', null, 'y'),
    (3, 'gamma', 30, 'x'),
    (4, 'delta', 40, null),
    (5, 'epsilon', 50, 'y,z');
grant select on pgrst_fixture.item to anon, authenticated, service_role;

-- Side-effect log: "failed calls wrote nothing" is checked here.
create table pgrst_fixture.log (
    id bigint generated always as identity primary key,
    note text not null unique
);
grant select, insert on pgrst_fixture.log to anon, authenticated, service_role;

-- scalar int, one defaulted arg
create function pgrst_fixture.add(a integer, b integer default 10) returns integer
language sql immutable as $$ select a + b $$;

-- scalar text; JSON numbers reach a text param as their text
create function pgrst_fixture.greet(name text) returns text
language sql stable as $$ select 'hello ' || name $$;

-- scalar jsonb, named
create function pgrst_fixture.echo_jsonb(payload jsonb) returns jsonb
language sql immutable as $$ select payload $$;

-- JSON null -> SQL NULL
create function pgrst_fixture.is_null(v text default 'omitted') returns text
language sql immutable as $$ select coalesce(v, 'sql null') $$;

-- char(n) params are widened to varchar for json_to_record: no truncation
create function pgrst_fixture.char_len(c character) returns integer
language sql immutable as $$ select octet_length(c::text) $$;

-- single composite; NULL result becomes an all-null object
create function pgrst_fixture.get_item(item_id integer) returns pgrst_fixture.item
language sql stable as $$ select * from pgrst_fixture.item where id = item_id $$;

-- OUT params: a single composite of two columns
create function pgrst_fixture.divmod(n integer, d integer, out q integer, out r integer)
language sql immutable as $$ select n / d, n % d $$;

-- RETURNS TABLE
create function pgrst_fixture.item_table(min_score integer default null)
returns table (id integer, name text, score integer)
language plpgsql stable as $$
begin
    return query
        select i.id, i.name, i.score from pgrst_fixture.item i
        where min_score is null or i.score >= min_score
        order by i.id;
end;
$$;

-- SETOF composite (the list_product_batches shape)
create function pgrst_fixture.list_items() returns setof pgrst_fixture.item
language plpgsql stable as $$
begin
    return query select * from pgrst_fixture.item order by id;
end;
$$;

-- SETOF scalar
create function pgrst_fixture.item_ids() returns setof integer
language sql stable as $$ select id from pgrst_fixture.item order by id $$;

-- void, writing
create function pgrst_fixture.write_log(note text) returns void
language sql volatile as $$ insert into pgrst_fixture.log (note) values (note) $$;

-- volatile, writing, returns the row count
create function pgrst_fixture.log_count(note text) returns bigint
language plpgsql volatile as $$
begin
    insert into pgrst_fixture.log (note) values (note);
    return (select count(*) from pgrst_fixture.log);
end;
$$;

-- writes, then fails: the write must not survive
create function pgrst_fixture.log_then_fail(note text) returns void
language plpgsql volatile as $$
begin
    insert into pgrst_fixture.log (note) values (note);
    raise exception 'failed after writing %', note;
end;
$$;

-- STABLE but writing (through a volatile helper, as plpgsql refuses DML in a
-- non-volatile body): POST runs it READ ONLY -> 25006 -> 405
create function pgrst_fixture.stable_write(note text) returns void
language plpgsql stable as $$
begin
    perform pgrst_fixture.write_log(note);
end;
$$;

-- overloads: {"a": ..} matches both -> 300; {"a": .., "b": ..} only the second
create function pgrst_fixture.ov(a integer) returns text
language sql immutable as $$ select 'one' $$;
create function pgrst_fixture.ov(a integer, b text default null) returns text
language sql immutable as $$ select 'two' $$;

-- single unnamed jsonb param: the raw body is passed as is
create function pgrst_fixture.raw_body(jsonb) returns jsonb
language sql immutable as $$ select $1 $$;

-- variadic
create function pgrst_fixture.total(variadic nums integer[]) returns integer
language sql immutable as $$ select sum(n)::integer from unnest(nums) as n $$;

-- errors
create function pgrst_fixture.fail_pt401() returns void
language plpgsql as $$
begin
    raise sqlstate 'PT401' using message = 'Not authenticated', hint = 'Sign in';
end;
$$;

create function pgrst_fixture.fail_42501() returns void
language plpgsql as $$
begin
    raise sqlstate '42501' using message = 'Forbidden', detail = 'not a member';
end;
$$;

create function pgrst_fixture.fail_p0001() returns void
language plpgsql as $$
begin
    raise exception 'plain failure';
end;
$$;

create function pgrst_fixture.fail_p0002() returns void
language plpgsql as $$
begin
    raise sqlstate 'P0002' using message = 'no data';
end;
$$;

create function pgrst_fixture.fail_22023() returns void
language plpgsql as $$
begin
    raise sqlstate '22023' using message = 'Invalid input: quantity',
        detail = 'quantity must be > 0', hint = 'Send a positive integer';
end;
$$;

create function pgrst_fixture.fail_pgrst() returns void
language plpgsql as $$
begin
    raise sqlstate 'PGRST' using
        message = '{"code":"123","message":"Payment Required","details":"Quota exceeded","hint":"Upgrade"}',
        detail = '{"status":402,"headers":{"X-Powered-By":"fixture"}}';
end;
$$;

create function pgrst_fixture.fail_pgrst_bad() returns void
language plpgsql as $$
begin
    raise sqlstate 'PGRST' using message = 'not json', detail = '{}';
end;
$$;

-- response.status / response.headers GUCs
create function pgrst_fixture.created() returns text
language plpgsql volatile as $$
begin
    perform set_config('response.status', '201', true);
    perform set_config('response.headers', '[{"Location": "/items/6"}]', true);
    return 'created';
end;
$$;

-- echoes what the settings statement set, and the main statement's own text
create function pgrst_fixture.whoami(tag text default null) returns jsonb
language sql stable as $$
    select jsonb_build_object(
        'tag', tag,
        'query', current_query(),
        'claims', current_setting('request.jwt.claims')::jsonb,
        'role', current_user,
        'method', current_setting('request.method'),
        'path', current_setting('request.path'),
        'headers', current_setting('request.headers')::jsonb,
        'cookies', current_setting('request.cookies')::jsonb,
        'search_path', current_setting('search_path'),
        'read_only', current_setting('transaction_read_only'),
        'isolation', current_setting('transaction_isolation'))
$$;

create function pgrst_fixture.whoami_volatile() returns jsonb
language sql volatile as $$ select pgrst_fixture.whoami() $$;

create function pgrst_fixture.serializable() returns text
language sql stable
set default_transaction_isolation = 'serializable'
as $$ select current_setting('transaction_isolation') $$;

-- EXECUTE withheld from the API roles
create function pgrst_fixture.no_grant() returns integer
language sql immutable as $$ select 1 $$;

grant execute on all functions in schema pgrst_fixture to anon, authenticated, service_role;
revoke execute on function pgrst_fixture.no_grant() from public, anon, authenticated, service_role;
