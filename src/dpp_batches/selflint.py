"""Catalog self-lint: our own queries over pg_catalog in the spirit of Supabase's splinter.

Each lint takes a list of schemas and returns findings; zero findings is the goal. The splinter
lints (numbers and names as in `reference/postgrest-supabase.md` §6):

* 0001 a foreign key without an index led by its columns;
* 0003 an identity call in a policy that runs once per row (see below);
* 0006 more than one permissive policy for one table, role and action;
* 0007 policies on a table whose row-level security is off; 0008 the reverse;
* 0010 a view that anon/authenticated can read without ``security_invoker``;
* 0011 a function without ``set search_path``;
* 0013 a table that anon/authenticated can read while row-level security is off;
* 0024 an always-true write policy for anon, authenticated or public;
* 0028 / 0029 a SECURITY DEFINER function that anon / authenticated may execute;

and two of our own: ``safeupdate`` (an UPDATE or DELETE without WHERE in a SQL or PL/pgSQL
function body, the rule pg-safeupdate enforces on Supabase) and ``rls_disabled`` (a table with
row-level security off).

0003 also follows our own helpers: a function whose body calls ``current_setting()`` or
``auth.*()``, directly or through another such function, is an identity call, and in a policy
every identity call must sit inside a ``(select …)`` so it runs once per statement (an
initPlan), not once per row.

Run it: ``python -m dpp_batches.selflint --dsn DSN [--schema S ...]``. Exit 0 when every
finding is waived (``WAIVED``, by design, with the reason), 1 on any other finding, 2 when the
database cannot be read.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

DEFAULT_SCHEMAS = ("public", "dpp", "dpp_meta")
API_ROLES = ("anon", "authenticated")
# Identity calls that splinter 0003 looks for, as (schema, name).
IDENTITY_CALLS = frozenset(
    {
        ("pg_catalog", "current_setting"),
        ("auth", "uid"),
        ("auth", "jwt"),
        ("auth", "role"),
        ("auth", "email"),
    }
)

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Finding:
    lint: str  # e.g. "0001_unindexed_foreign_keys"
    object: str  # the table, policy or function, schema-qualified
    detail: str

    def __str__(self) -> str:
        return f"{self.lint}: {self.object}: {self.detail}"


@dataclass(frozen=True)
class Lint:
    name: str  # "<NNNN>_<splinter name>", or our own name
    title: str
    check: Callable[[Conn, Sequence[str]], list[Finding]]

    def run(self, conn: Conn, schemas: Sequence[str]) -> list[Finding]:
        return self.check(conn, list(schemas))


def _sql_lint(name: str, title: str, query: str) -> Lint:
    """A lint that is one query over the catalog: rows of (object, detail) for %(schemas)s."""

    def check(conn: Conn, schemas: Sequence[str]) -> list[Finding]:
        rows = conn.execute(query, {"schemas": list(schemas), "api_roles": list(API_ROLES)})
        return [Finding(name, obj, detail) for obj, detail in rows.fetchall()]

    return Lint(name, title, check)


# --------------------------------------------------------------------------- catalog queries

_TABLES = """
select c.oid, n.nspname, c.relname, c.relrowsecurity
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname = any(%(schemas)s)
  and not exists (select 1 from pg_catalog.pg_depend as d
                  where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid
                    and d.deptype = 'e')
"""
# Roles that exist, among the API roles (has_*_privilege fails on a missing role).
_API_ROLES = """
select r.rolname from pg_catalog.pg_roles as r where r.rolname = any(%(api_roles)s)
"""

UNINDEXED_FOREIGN_KEYS = _sql_lint(
    "0001_unindexed_foreign_keys",
    "Foreign key without an index led by its columns",
    """
select pg_catalog.format('%%I.%%I.%%I', n.nspname, c.relname, con.conname),
       'foreign key (' || (
           select pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' order by k.ord)
           from unnest(con.conkey) with ordinality as k (attnum, ord)
           join pg_catalog.pg_attribute as a on a.attrelid = con.conrelid and a.attnum = k.attnum
       ) || ') has no valid, non-partial index whose leading columns are these columns'
from pg_catalog.pg_constraint as con
join pg_catalog.pg_class as c on c.oid = con.conrelid
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
where con.contype = 'f' and n.nspname = any(%(schemas)s)
  and not exists (
      select 1
      from pg_catalog.pg_index as i
      where i.indrelid = con.conrelid and i.indisvalid and i.indpred is null
        and i.indnkeyatts >= pg_catalog.cardinality(con.conkey)
        and (select array_agg(k order by k)
             from unnest((pg_catalog.string_to_array(i.indkey::text, ' ')::int2[])
                         [1:pg_catalog.cardinality(con.conkey)]) as k)
            = (select array_agg(k order by k) from unnest(con.conkey) as k)
  )
order by 1
""",
)

MULTIPLE_PERMISSIVE_POLICIES = _sql_lint(
    "0006_multiple_permissive_policies",
    "More than one permissive policy for one table, role and action",
    """
with pol as (
    select n.nspname, c.relname, p.polname, p.polroles,
           case p.polcmd when 'r' then 'select' when 'a' then 'insert'
                         when 'w' then 'update' when 'd' then 'delete' end as cmd,
           p.polcmd = '*' as is_all
    from pg_catalog.pg_policy as p
    join pg_catalog.pg_class as c on c.oid = p.polrelid
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    where p.polpermissive and n.nspname = any(%(schemas)s)
),
expanded as (
    select pol.nspname, pol.relname, pol.polname, r.rolname, action
    from pol
    cross join lateral unnest(
        case when pol.is_all then array['select', 'insert', 'update', 'delete']
             else array[pol.cmd] end
    ) as action
    join pg_catalog.pg_roles as r
      on r.oid = any(pol.polroles)
      or (pol.polroles = '{0}' and not r.rolsuper and r.rolname !~ '^pg_')
)
select pg_catalog.format('%%I.%%I', nspname, relname),
       pg_catalog.format('role %%s, %%s: permissive policies %%s',
                         rolname, action, pg_catalog.string_agg(polname, ', ' order by polname))
from expanded
group by nspname, relname, rolname, action
having count(*) > 1
order by 1, 2
""",
)

POLICY_EXISTS_RLS_DISABLED = _sql_lint(
    "0007_policy_exists_rls_disabled",
    "Policies exist but row-level security is disabled",
    f"""
with t as ({_TABLES})
select pg_catalog.format('%%I.%%I', t.nspname, t.relname),
       'has policies (' || (select pg_catalog.string_agg(p.polname, ', ' order by p.polname)
                            from pg_catalog.pg_policy as p where p.polrelid = t.oid)
       || ') but row-level security is disabled'
from t
where not t.relrowsecurity
  and exists (select 1 from pg_catalog.pg_policy as p where p.polrelid = t.oid)
order by 1
""",
)

RLS_ENABLED_NO_POLICY = _sql_lint(
    "0008_rls_enabled_no_policy",
    "Row-level security is enabled but no policy exists",
    f"""
with t as ({_TABLES})
select pg_catalog.format('%%I.%%I', t.nspname, t.relname),
       'row-level security is enabled but there is no policy (every row is denied)'
from t
where t.relrowsecurity
  and not exists (select 1 from pg_catalog.pg_policy as p where p.polrelid = t.oid)
order by 1
""",
)

SECURITY_DEFINER_VIEW = _sql_lint(
    "0010_security_definer_view",
    "View readable by anon/authenticated without security_invoker",
    f"""
with api as ({_API_ROLES})
select pg_catalog.format('%%I.%%I', n.nspname, c.relname),
       'view is readable by ' || pg_catalog.string_agg(api.rolname, ', ' order by api.rolname)
       || ' and runs with its owner''s rights (set security_invoker = on)'
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
join api on pg_catalog.has_table_privilege(api.rolname, c.oid, 'SELECT')
where c.relkind = 'v' and n.nspname = any(%(schemas)s)
  and not exists (
      select 1 from unnest(coalesce(c.reloptions, '{{}}')) as o
      where pg_catalog.split_part(o, '=', 1) = 'security_invoker'
        and pg_catalog.split_part(o, '=', 2)::boolean
  )
group by n.nspname, c.relname
order by 1
""",
)

FUNCTION_SEARCH_PATH_MUTABLE = _sql_lint(
    "0011_function_search_path_mutable",
    "Function without a pinned search_path",
    """
select p.oid::regprocedure::text, 'has no "set search_path" (CVE-2018-1058)'
from pg_catalog.pg_proc as p
join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
where n.nspname = any(%(schemas)s) and p.prokind in ('f', 'p')
  and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) as cfg
                  where cfg like 'search\\_path=%%')
  and not exists (select 1 from pg_catalog.pg_depend as d
                  where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid
                    and d.deptype = 'e')
order by 1
""",
)

RLS_DISABLED_IN_PUBLIC = _sql_lint(
    "0013_rls_disabled_in_public",
    "Table readable by anon/authenticated with row-level security disabled",
    f"""
with t as ({_TABLES}), api as ({_API_ROLES})
select pg_catalog.format('%%I.%%I', t.nspname, t.relname),
       'readable by ' || pg_catalog.string_agg(api.rolname, ', ' order by api.rolname)
       || ' while row-level security is disabled'
from t
join api on pg_catalog.has_any_column_privilege(api.rolname, t.oid, 'SELECT')
where not t.relrowsecurity
group by t.nspname, t.relname
order by 1
""",
)

RLS_POLICY_ALWAYS_TRUE = _sql_lint(
    "0024_rls_policy_always_true",
    "Permissive write policy for anon/authenticated/public that is always true",
    """
with pol as (
    select n.nspname, c.relname, p.polname, p.polcmd,
           pg_catalog.regexp_replace(
               pg_catalog.lower(pg_catalog.pg_get_expr(p.polqual, p.polrelid)), '[\\s()]', '', 'g'
           ) as qual,
           pg_catalog.regexp_replace(
               pg_catalog.lower(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)),
               '[\\s()]', '', 'g'
           ) as with_check
    from pg_catalog.pg_policy as p
    join pg_catalog.pg_class as c on c.oid = p.polrelid
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    where p.polpermissive and n.nspname = any(%(schemas)s)
      and (p.polroles = '{0}' or exists (
          select 1 from pg_catalog.pg_roles as r
          where r.oid = any(p.polroles) and r.rolname = any(%(api_roles)s)))
)
select pg_catalog.format('%%I.%%I.%%I', nspname, relname, polname),
       case
           when polcmd in ('w', 'd', '*') and qual in ('true', '1=1')
               then 'using (true) lets every row be updated or deleted'
           when polcmd = 'a' and with_check is null
               then 'an insert policy without with check admits every row'
           else 'with check (true) admits every row'
       end
from pol
where (polcmd in ('w', 'd', '*') and qual in ('true', '1=1'))
   or (polcmd in ('a', 'w', '*') and with_check in ('true', '1=1'))
   or (polcmd = 'a' and with_check is null)
order by 1
""",
)


def _definer_lint(name: str, role: str) -> Lint:
    return _sql_lint(
        name,
        f"SECURITY DEFINER function executable by {role}",
        f"""
select p.oid::regprocedure::text,
       'SECURITY DEFINER function that {role} may execute'
from pg_catalog.pg_proc as p
join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
where p.prosecdef and n.nspname = any(%(schemas)s)
  and exists (select 1 from pg_catalog.pg_roles as r where r.rolname = '{role}')
  and pg_catalog.has_function_privilege('{role}', p.oid, 'EXECUTE')
order by 1
""",
    )


ANON_SECURITY_DEFINER = _definer_lint("0028_anon_security_definer_function_executable", "anon")
AUTHENTICATED_SECURITY_DEFINER = _definer_lint(
    "0029_authenticated_security_definer_function_executable", "authenticated"
)

RLS_DISABLED = _sql_lint(
    "rls_disabled",
    "Table with row-level security disabled",
    f"""
with t as ({_TABLES})
select pg_catalog.format('%%I.%%I', t.nspname, t.relname), 'row-level security is disabled'
from t
where not t.relrowsecurity
order by 1
""",
)


# --------------------------------------------------------------------------- function bodies


@dataclass(frozen=True)
class Token:
    kind: str  # "word" (lower-cased keyword or identifier), "ident" (quoted), "punct"
    text: str
    line: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
  | (?P<estring>[Ee]')
  | (?P<string>')
  | (?P<ident>")
  | (?P<param>\$\d+)
  | (?P<word>[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)
  | (?P<number>\d+(?:\.\d*)?(?:[Ee][+-]?\d+)?)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def tokens(source: str) -> Iterator[Token]:
    """Tokens of SQL or PL/pgSQL text; comments and string literals (every quoting form)
    are dropped, so only code is left."""
    pos, line = 0, 1
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        assert match is not None  # the last alternative matches any character
        kind, text = match.lastgroup, match.group()
        end = match.end()
        if kind == "block_comment":
            end = _block_comment_end(source, pos)
        elif kind == "dollar":
            close = source.find(text, end)
            end = len(source) if close < 0 else close + len(text)
        elif kind in ("string", "estring"):
            end = _quoted_end(source, end, "'", backslash=kind == "estring")
        elif kind == "ident":
            end = _quoted_end(source, end, '"', backslash=False)
            yield Token("ident", source[pos + 1 : end - 1].replace('""', '"'), line)
        elif kind == "word":
            yield Token("word", text.lower(), line)
        elif kind == "punct":
            yield Token("punct", text, line)
        line += source.count("\n", pos, end)
        pos = end


def _block_comment_end(source: str, pos: int) -> int:
    depth, i = 0, pos
    while i < len(source):
        if source.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif source.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(source)


def _quoted_end(source: str, pos: int, quote: str, *, backslash: bool) -> int:
    i = pos
    while i < len(source):
        ch = source[i]
        if backslash and ch == "\\":
            i += 2
        elif ch == quote:
            if source.startswith(quote, i + 1):  # doubled quote
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(source)


# Words before UPDATE/DELETE that make it something other than a statement: ON CONFLICT DO
# UPDATE, FOR [NO KEY] UPDATE, ON UPDATE/DELETE actions, trigger events, privilege lists.
_NOT_A_STATEMENT = frozenset(
    {"do", "for", "key", "or", "of", "on", "grant", "revoke", "before", "after", ","}
)


def unguarded_writes(source: str) -> list[tuple[str, int]]:
    """(command, line) of every UPDATE or DELETE statement without a WHERE clause of its own
    (pg-safeupdate's rule). WHERE inside a subquery does not count."""
    toks = list(tokens(source))
    found: list[tuple[str, int]] = []
    for i, tok in enumerate(toks):
        if tok.kind != "word" or tok.text not in ("update", "delete"):
            continue
        prev = toks[i - 1].text if i else ";"
        if prev in _NOT_A_STATEMENT or _in_merge(toks, i):
            continue
        depth, guarded = 0, False
        for nxt in toks[i + 1 :]:
            if nxt.kind == "punct" and nxt.text == "(":
                depth += 1
            elif nxt.kind == "punct" and nxt.text == ")":
                depth -= 1
                if depth < 0:
                    break  # the end of a CTE or subquery holding the statement
            elif nxt.kind == "punct" and nxt.text == ";" and depth == 0:
                break
            elif nxt.kind == "word" and nxt.text == "where" and depth == 0:
                guarded = True
                break
        if not guarded:
            found.append((tok.text.upper(), tok.line))
    return found


def _in_merge(toks: Sequence[Token], index: int) -> bool:
    """True when toks[index] is a WHEN ... THEN UPDATE/DELETE action of a MERGE."""
    for tok in reversed(toks[:index]):
        if tok.kind == "punct" and tok.text == ";":
            return False
        if tok.kind == "word" and tok.text == "merge":
            return True
    return False


_FUNCTIONS = """
select p.oid, p.oid::regprocedure::text, n.nspname, p.proname,
       case when p.prosqlbody is not null then pg_catalog.pg_get_functiondef(p.oid)
            else p.prosrc end
from pg_catalog.pg_proc as p
join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
join pg_catalog.pg_language as l on l.oid = p.prolang
where l.lanname in ('sql', 'plpgsql') and p.prokind in ('f', 'p')
  and n.nspname = any(%(schemas)s)
order by 2
"""


def _functions(conn: Conn, schemas: Sequence[str]) -> list[tuple[Any, ...]]:
    return list(conn.execute(_FUNCTIONS, {"schemas": list(schemas)}).fetchall())


def _safeupdate(conn: Conn, schemas: Sequence[str]) -> list[Finding]:
    findings = []
    for _, signature, _, _, source in _functions(conn, schemas):
        for command, line in unguarded_writes(source):
            findings.append(
                Finding(
                    "safeupdate",
                    signature,
                    f"{command} without WHERE at line {line} of the body (pg-safeupdate)",
                )
            )
    return findings


SAFEUPDATE = Lint("safeupdate", "UPDATE or DELETE without WHERE in a function", _safeupdate)


# --------------------------------------------------------------------------- 0003


def _call_pattern(schema: str, name: str) -> re.Pattern[str]:
    """A call of schema.name(...) in SQL text (bare or quoted names). Only pg_catalog
    functions are matched unqualified too: every other call must name its schema (lint 0011
    makes sure no function relies on a search_path)."""
    s, f = re.escape(schema), re.escape(name)
    qualified = rf'(?:(?<![\w."$]){s}|"{s}")\s*\.\s*(?:{f}\b|"{f}")\s*\('
    if schema != "pg_catalog":
        return re.compile(qualified, re.IGNORECASE)
    bare = rf'(?<![\w."$])(?:{f}\b|"{f}")\s*\('
    return re.compile(f"{qualified}|{bare}", re.IGNORECASE)


def _code_text(source: str) -> str:
    """Source with comments and string literals removed (tokens joined by spaces)."""
    parts = []
    for tok in tokens(source):
        parts.append('"' + tok.text.replace('"', '""') + '"' if tok.kind == "ident" else tok.text)
    return " ".join(parts)


def identity_functions(conn: Conn) -> dict[tuple[str, str], str]:
    """Every identity call: IDENTITY_CALLS and every SQL/PL/pgSQL function (in any non-system
    schema) whose body calls one, directly or through another; maps each to the call chain."""
    schemas = [
        row[0]
        for row in conn.execute(
            "select nspname from pg_catalog.pg_namespace"
            " where nspname not in ('pg_catalog', 'information_schema')"
            " and nspname !~ '^pg_(toast|temp)'"
        ).fetchall()
    ]
    bodies = {(nsp, name): _code_text(src) for _, _, nsp, name, src in _functions(conn, schemas)}
    tainted: dict[tuple[str, str], str] = {call: f"{call[0]}.{call[1]}" for call in IDENTITY_CALLS}
    changed = True
    while changed:
        changed = False
        for fn, body in bodies.items():
            if fn in tainted:
                continue
            for callee, chain in list(tainted.items()):
                if _call_pattern(*callee).search(body):
                    tainted[fn] = f"{fn[0]}.{fn[1]} -> {chain}"
                    changed = True
                    break
    return tainted


_POLICIES = """
select pg_catalog.format('%%I.%%I.%%I', n.nspname, c.relname, p.polname),
       pg_catalog.pg_get_expr(p.polqual, p.polrelid),
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
from pg_catalog.pg_policy as p
join pg_catalog.pg_class as c on c.oid = p.polrelid
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s)
order by 1
"""
_SELECT = re.compile(r"\s*select\b", re.IGNORECASE)


def _subqueries(expression: str) -> tuple[str, list[tuple[int, int]]]:
    """The expression with string literals blanked (positions kept), and the spans of its
    parenthesised ``(select …)`` subqueries."""
    chars = list(expression)
    stack: list[tuple[int, bool]] = []
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(chars):
        ch = chars[i]
        if ch in "'\"":
            end = _quoted_end(expression, i + 1, ch, backslash=False)
            if ch == "'":
                chars[i:end] = " " * (end - i)
            i = end
            continue
        if ch == "(":
            stack.append((i, _SELECT.match(expression, i + 1) is not None))
        elif ch == ")" and stack:
            start, is_select = stack.pop()
            if is_select:
                spans.append((start, i))
        i += 1
    return "".join(chars), spans


def unwrapped_calls(expression: str, calls: dict[tuple[str, str], str]) -> list[str]:
    """Call chains of the identity calls in a policy expression that no ``(select …)``
    encloses: those run once per row instead of once per statement."""
    code, spans = _subqueries(expression)
    found = []
    for callee, chain in sorted(calls.items()):
        for match in _call_pattern(*callee).finditer(code):
            if not any(start < match.start() < end for start, end in spans):
                found.append(chain)
    return found


def _auth_rls_initplan(conn: Conn, schemas: Sequence[str]) -> list[Finding]:
    with conn.transaction():
        # Deparse with only pg_catalog on the path, so every other name comes out qualified.
        conn.execute("set local search_path = pg_catalog")
        policies = conn.execute(_POLICIES, {"schemas": list(schemas)}).fetchall()
        calls = identity_functions(conn)
    findings = []
    for policy, qual, with_check in policies:
        for clause, expression in (("using", qual), ("with check", with_check)):
            if expression is None:
                continue
            for chain in unwrapped_calls(expression, calls):
                findings.append(
                    Finding(
                        "0003_auth_rls_initplan",
                        policy,
                        f"{clause} calls {chain} per row; wrap the call as (select …)",
                    )
                )
    return findings


AUTH_RLS_INITPLAN = Lint(
    "0003_auth_rls_initplan",
    "Identity call in a policy not wrapped in a select",
    _auth_rls_initplan,
)

LINTS: tuple[Lint, ...] = (
    UNINDEXED_FOREIGN_KEYS,
    AUTH_RLS_INITPLAN,
    MULTIPLE_PERMISSIVE_POLICIES,
    POLICY_EXISTS_RLS_DISABLED,
    RLS_ENABLED_NO_POLICY,
    SECURITY_DEFINER_VIEW,
    FUNCTION_SEARCH_PATH_MUTABLE,
    RLS_DISABLED_IN_PUBLIC,
    RLS_POLICY_ALWAYS_TRUE,
    ANON_SECURITY_DEFINER,
    AUTHENTICATED_SECURITY_DEFINER,
    SAFEUPDATE,
    RLS_DISABLED,
)
BY_NAME = {lint.name: lint for lint in LINTS}
# Schemas each lint covers on our own package. rls_disabled skips dpp_meta: the migration
# history is never granted to an API role (0013 would catch a grant).
OUR_SCHEMAS: dict[str, tuple[str, ...]] = {lint.name: DEFAULT_SCHEMAS for lint in LINTS} | {
    "rls_disabled": ("public", "dpp")
}


_DEFINER_HELPER = (
    "SECURITY DEFINER on purpose: row-level security on dpp.brand_members asks which brands "
    "the caller is in without recursing into its own policies. It lives in the unexposed dpp "
    "schema (PostgREST cannot call it), pins search_path, is not executable by anon, and "
    "answers only about the caller (dpp.current_user_id())."
)
# Findings on our own schemas that are so by design: (lint, object) -> reason.
WAIVED: dict[tuple[str, str], str] = {
    ("0029_authenticated_security_definer_function_executable", "dpp.my_brand_ids()"): (
        _DEFINER_HELPER
    ),
    (
        "0029_authenticated_security_definer_function_executable",
        "dpp.my_brand_ids_with_role(text)",
    ): _DEFINER_HELPER,
}


def is_waived(finding: Finding) -> bool:
    return (finding.lint, finding.object) in WAIVED


def run_lints(
    conn: Conn, schemas: Sequence[str] | None = None, lints: Sequence[Lint] = LINTS
) -> list[Finding]:
    """Every finding of ``lints`` over ``schemas`` (default: each lint's OUR_SCHEMAS)."""
    findings: list[Finding] = []
    for lint in lints:
        findings.extend(lint.run(conn, schemas or OUR_SCHEMAS[lint.name]))
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dpp_batches.selflint", description="Catalog self-lint (splinter-style)."
    )
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--schema", action="append", help="schema to lint (repeatable; default: ours)"
    )
    args = parser.parse_args(argv)
    if not args.dsn:
        print("selflint: no database: pass --dsn or set DATABASE_URL", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(args.dsn, autocommit=True, prepare_threshold=None) as conn:
            findings = run_lints(conn, args.schema)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"selflint: {first}", file=sys.stderr)
        return 2
    for finding in findings:
        print(f"{finding} [waived: by design]" if is_waived(finding) else finding)
    failing = [f for f in findings if not is_waived(f)]
    waived = len(findings) - len(failing)
    print(f"selflint: {len(LINTS)} lints, {len(failing)} findings ({waived} waived)")
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
