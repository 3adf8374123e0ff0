-- Prompt-cache writes priced at their own rate, and unpriced usage kept apart in the rollups.
--
-- A price may name what a token written to the provider's prompt cache costs (Anthropic bills
-- cache_creation_input_tokens at a premium over input); 0 means the input price. A usage record
-- counts those tokens (cache_write_tokens, a subset of prompt_tokens, as cached_tokens is).
ALTER TABLE model_pricing
	ADD COLUMN cache_write_per_million bigint NOT NULL DEFAULT 0;

ALTER TABLE usage_records
	ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;

-- A rollup row is now priced or not: the usage of records without a cost (a model without a
-- price, a cost that could not be computed) sums into a row of its own with priced = false, whose
-- cost is unknown rather than $0. Rows made before this migration are marked priced: they mixed
-- both and cannot be split (their unpriced share counted as $0).
ALTER TABLE billing_record
	ADD COLUMN priced boolean NOT NULL DEFAULT true,
	ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE billing_record DROP CONSTRAINT billing_record_pkey;
ALTER TABLE billing_record ADD PRIMARY KEY (day, tenant_id, user_id, key_id, model, priced);
