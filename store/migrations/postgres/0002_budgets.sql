-- Budgets (USD per day and per month, in micro-USD) join the other limits of a policy; a credit
-- account keeps the running total of its charges beside its balance, so a replica can tell the
-- charges the ledger already holds from those still on their way to it.
ALTER TABLE quota_policies
	ADD COLUMN budget_day_micro_usd bigint,
	ADD COLUMN budget_month_micro_usd bigint;

ALTER TABLE credit_accounts ADD COLUMN charged_pico_usd numeric(38, 0) NOT NULL DEFAULT 0;

UPDATE credit_accounts a SET charged_pico_usd = COALESCE((SELECT -sum(l.amount_pico_usd)
	FROM credit_ledger l WHERE l.account_id = a.id AND l.kind = 'charge'), 0);

-- Spend of a key or tenant over a day or month range (the user's index exists already).
CREATE INDEX billing_record_key_idx ON billing_record (key_id, day);
CREATE INDEX billing_record_tenant_idx ON billing_record (tenant_id, day);
