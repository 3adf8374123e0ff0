-- Placeholder: migration 0012 belongs to a sibling branch. This file keeps the numbering
-- contiguous on this branch only and goes when the branches are merged.
SELECT 1;
