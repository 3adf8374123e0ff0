-- Placeholder: version 0008 belongs to a change made in parallel (another branch). The migration
-- loader refuses gaps, so this empty step keeps 0009 loadable on this branch alone; it is dropped
-- when the branches are merged.
SELECT 1;
