-- The public model that served a request: the one asked for (model), or the fallback model that
-- took over when every deployment of it failed. Empty for records no upstream attempt was made
-- for, and for those written before this column.

ALTER TABLE usage_records ADD COLUMN served_model text NOT NULL DEFAULT '';
