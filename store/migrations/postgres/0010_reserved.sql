-- Version 10 belongs to a change made beside this branch; this placeholder keeps the versions
-- contiguous here and gives way to that change's file when the branches are merged.
SELECT 1;
