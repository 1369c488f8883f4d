-- Indexes for the brand-wide batch listing (list_brand_batches): keyset
-- pagination newest first, (created_at, id) descending, within one brand. With
-- no filter, or a status or facility filter, an index delivers the rows in
-- page order, so a page costs the same at any depth.

create index batches_brand_id_created_at_idx
on dpp.batches (brand_id, created_at desc, id desc);

create index batches_brand_id_status_created_at_idx
on dpp.batches (brand_id, status, created_at desc, id desc);

create index batches_brand_id_facility_ref_created_at_idx
on dpp.batches (brand_id, facility_ref, created_at desc, id desc);

-- A narrow production-date range is read through this index and sorted; a wide
-- one is cheaper along the created_at order above. The planner chooses.
create index batches_brand_id_production_date_idx
on dpp.batches (brand_id, production_date);
