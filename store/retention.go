package store

import "time"

// UsageUpkeep is what one pass of a store's usage housekeeping did: the monthly partitions it
// made ahead (PostgreSQL only) and what retention removed.
type UsageUpkeep struct {
	// Skipped means another replica was running the upkeep (or a migration) on the same
	// database, so this pass did nothing: that replica's pass does the same work.
	Skipped bool
	// Created names the partitions made, oldest first.
	Created []string
	// Dropped names the partitions dropped because their month lies before the horizon.
	Dropped []string
	// Deleted counts usage rows deleted one by one because they started before the horizon:
	// PostgreSQL's DEFAULT partition, or SQLite's table.
	Deleted int64
}

// RetentionHorizon is the oldest start time a usage record keeps under a retention of months
// (months > 0): the first instant of the month that lies months before now's month, in UTC. So a
// retention of 12 keeps the current month and the twelve whole months before it.
func RetentionHorizon(now time.Time, months int) time.Time {
	u := now.UTC()
	return time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -months, 0)
}
