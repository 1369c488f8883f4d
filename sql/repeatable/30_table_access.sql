-- Table privileges and row-level security policies for the dpp tables.
--
-- Privileges name their columns for INSERT and UPDATE, so ids, brand_id,
-- product_id and the audit columns cannot be written by plain SQL either.
-- A batch's status may be updated (never inserted): the lifecycle trigger
-- (75_batch_lifecycle.sql) checks every change of it. Nobody may DELETE
-- brands, products or batches; batch_events is read-only for everyone.
--
-- One policy per table x command x role. Users (authenticated) see the rows
-- of their brands; editors and above write products and batches; owners and
-- admins manage members (an admin only editor/viewer rows).
--
-- service_role gets explicit policies that allow everything it is granted.
-- Supabase's service_role has BYPASSRLS and never reaches them; they make the
-- package work where service_role exists without BYPASSRLS (a cluster where
-- it was created by a non-superuser, or by someone else).
--
-- anon has no privilege on any table.

-- brands ---------------------------------------------------------------------
revoke all on dpp.brands from public, anon, authenticated, service_role;
grant select on dpp.brands to authenticated, service_role;
grant insert (name) on dpp.brands to service_role;

drop policy if exists select_member on dpp.brands;
create policy select_member on dpp.brands
for select to authenticated
using (id in (select dpp.my_brand_ids()));

drop policy if exists select_service on dpp.brands;
create policy select_service on dpp.brands
for select to service_role
using (true);

drop policy if exists insert_service on dpp.brands;
create policy insert_service on dpp.brands
for insert to service_role
with check (true);

-- brand_members ----------------------------------------------------------------
revoke all on dpp.brand_members from public, anon, authenticated, service_role;
grant select, delete on dpp.brand_members to authenticated, service_role;
grant insert (brand_id, user_id, role) on dpp.brand_members to authenticated, service_role;
grant update (role) on dpp.brand_members to authenticated, service_role;

drop policy if exists select_member on dpp.brand_members;
create policy select_member on dpp.brand_members
for select to authenticated
using (brand_id in (select dpp.my_brand_ids()));

-- Owners may write any member row of their brands; admins only rows whose
-- role is (and stays) editor or viewer.
drop policy if exists insert_manager on dpp.brand_members;
create policy insert_manager on dpp.brand_members
for insert to authenticated
with check (
    brand_id in (select dpp.my_brand_ids_with_role('owner'))
    or (
        role in ('editor', 'viewer')
        and brand_id in (select dpp.my_brand_ids_with_role('admin'))
    )
);

drop policy if exists update_manager on dpp.brand_members;
create policy update_manager on dpp.brand_members
for update to authenticated
using (
    brand_id in (select dpp.my_brand_ids_with_role('owner'))
    or (
        role in ('editor', 'viewer')
        and brand_id in (select dpp.my_brand_ids_with_role('admin'))
    )
)
with check (
    brand_id in (select dpp.my_brand_ids_with_role('owner'))
    or (
        role in ('editor', 'viewer')
        and brand_id in (select dpp.my_brand_ids_with_role('admin'))
    )
);

drop policy if exists delete_manager on dpp.brand_members;
create policy delete_manager on dpp.brand_members
for delete to authenticated
using (
    brand_id in (select dpp.my_brand_ids_with_role('owner'))
    or (
        role in ('editor', 'viewer')
        and brand_id in (select dpp.my_brand_ids_with_role('admin'))
    )
);

drop policy if exists select_service on dpp.brand_members;
create policy select_service on dpp.brand_members
for select to service_role
using (true);

drop policy if exists insert_service on dpp.brand_members;
create policy insert_service on dpp.brand_members
for insert to service_role
with check (true);

drop policy if exists update_service on dpp.brand_members;
create policy update_service on dpp.brand_members
for update to service_role
using (true)
with check (true);

drop policy if exists delete_service on dpp.brand_members;
create policy delete_service on dpp.brand_members
for delete to service_role
using (true);

-- products ---------------------------------------------------------------------
revoke all on dpp.products from public, anon, authenticated, service_role;
grant select on dpp.products to authenticated, service_role;
grant insert (brand_id, name, gtin, attributes) on dpp.products to authenticated, service_role;
grant update (name, gtin, attributes) on dpp.products to authenticated, service_role;

drop policy if exists select_member on dpp.products;
create policy select_member on dpp.products
for select to authenticated
using (brand_id in (select dpp.my_brand_ids()));

drop policy if exists insert_editor on dpp.products;
create policy insert_editor on dpp.products
for insert to authenticated
with check (brand_id in (select dpp.my_brand_ids_with_role('editor')));

drop policy if exists update_editor on dpp.products;
create policy update_editor on dpp.products
for update to authenticated
using (brand_id in (select dpp.my_brand_ids_with_role('editor')))
with check (brand_id in (select dpp.my_brand_ids_with_role('editor')));

drop policy if exists select_service on dpp.products;
create policy select_service on dpp.products
for select to service_role
using (true);

drop policy if exists insert_service on dpp.products;
create policy insert_service on dpp.products
for insert to service_role
with check (true);

drop policy if exists update_service on dpp.products;
create policy update_service on dpp.products
for update to service_role
using (true)
with check (true);

-- batches ----------------------------------------------------------------------
revoke all on dpp.batches from public, anon, authenticated, service_role;
grant select on dpp.batches to authenticated, service_role;
grant insert (
    brand_id, product_id, batch_number, production_date, quantity, facility_ref, attributes
) on dpp.batches to authenticated, service_role;
grant update (
    batch_number, status, production_date, quantity, facility_ref, attributes
) on dpp.batches to authenticated, service_role;

drop policy if exists select_member on dpp.batches;
create policy select_member on dpp.batches
for select to authenticated
using (brand_id in (select dpp.my_brand_ids()));

drop policy if exists insert_editor on dpp.batches;
create policy insert_editor on dpp.batches
for insert to authenticated
with check (brand_id in (select dpp.my_brand_ids_with_role('editor')));

drop policy if exists update_editor on dpp.batches;
create policy update_editor on dpp.batches
for update to authenticated
using (brand_id in (select dpp.my_brand_ids_with_role('editor')))
with check (brand_id in (select dpp.my_brand_ids_with_role('editor')));

drop policy if exists select_service on dpp.batches;
create policy select_service on dpp.batches
for select to service_role
using (true);

drop policy if exists insert_service on dpp.batches;
create policy insert_service on dpp.batches
for insert to service_role
with check (true);

drop policy if exists update_service on dpp.batches;
create policy update_service on dpp.batches
for update to service_role
using (true)
with check (true);

-- batch_events ------------------------------------------------------------------
-- Written only by the trigger dpp.tg_batches__record_event (it runs as the
-- owner); members of a brand (any role) read its history.
revoke all on dpp.batch_events from public, anon, authenticated, service_role;
grant select on dpp.batch_events to authenticated, service_role;

drop policy if exists select_member on dpp.batch_events;
create policy select_member on dpp.batch_events
for select to authenticated
using (brand_id in (select dpp.my_brand_ids()));

drop policy if exists select_service on dpp.batch_events;
create policy select_service on dpp.batch_events
for select to service_role
using (true);
