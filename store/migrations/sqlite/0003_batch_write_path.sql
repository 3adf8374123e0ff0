-- Credit accounts are never deleted or renumbered: the ledger refers to them. PostgreSQL relies on
-- that to check the accounts of ledger entries once per statement instead of by a foreign key (its
-- 0003); here the foreign key stays, and these triggers keep the two stores' rules the same.
CREATE TRIGGER credit_accounts_no_delete BEFORE DELETE ON credit_accounts
BEGIN
	SELECT RAISE(ABORT, 'credit accounts are never deleted or renumbered: the ledger refers to them');
END;

CREATE TRIGGER credit_accounts_no_renumber BEFORE UPDATE OF id ON credit_accounts
BEGIN
	SELECT RAISE(ABORT, 'credit accounts are never deleted or renumbered: the ledger refers to them');
END;
