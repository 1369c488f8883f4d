-- GS1 Digital Link paths for batches (reference/dpp-domain.md §2.2):
-- /01/{GTIN-14}/10/{batch/lot}. Pure functions of their arguments.

-- RFC 3986 percent-encoding of one path segment: the unreserved characters
-- A-Z a-z 0-9 - . _ ~ stay as they are; every other character becomes the
-- %XX (upper-case hex) of each of its UTF-8 bytes. This encodes
-- ! ' ( ) * too, so the link is the same whatever URL library reads it.
create or replace function dpp.percent_encode(_value text) returns text
language sql
immutable
strict
set search_path = ''
as $$
    select coalesce(
        pg_catalog.string_agg(
            case
                when pg_catalog.strpos(
                    'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~', c.ch
                ) > 0
                    then c.ch
                else pg_catalog.upper(
                    pg_catalog.regexp_replace(
                        pg_catalog.encode(pg_catalog.convert_to(c.ch, 'UTF8'), 'hex'),
                        '(..)', '%\1', 'g'
                    )
                )
            end,
            '' order by c.n
        ),
        ''
    )
    from pg_catalog.string_to_table(_value, null) with ordinality as c (ch, n)
$$;
comment on function dpp.percent_encode(text) is
$$RFC 3986 percent-encoding of a path segment: unreserved characters (A-Z a-z 0-9 - . _ ~)
kept, every other character as %XX (upper-case hex) of its UTF-8 bytes.$$;
revoke execute on function dpp.percent_encode(text) from public;
grant execute on function dpp.percent_encode(text) to authenticated, service_role;

-- NULL when the product has no GTIN (the link needs AI 01).
create or replace function dpp.digital_link(_gtin text, _batch_number text) returns text
language sql
immutable
strict
set search_path = ''
as $$
    select '/01/' || _gtin || '/10/' || dpp.percent_encode(_batch_number)
$$;
comment on function dpp.digital_link(text, text) is
$$GS1 Digital Link path of a batch: /01/{gtin}/10/{batch_number percent-encoded per RFC 3986}.
NULL when either argument is NULL (a product without GTIN has no link).$$;
revoke execute on function dpp.digital_link(text, text) from public;
grant execute on function dpp.digital_link(text, text) to authenticated, service_role;
