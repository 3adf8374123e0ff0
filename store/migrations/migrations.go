// Package migrations holds the versioned SQL schema of both stores, embedded in the binary so a
// deployment needs no migration files beside it. Each dialect has its own directory of files named
// NNNN_description.sql; a store applies, in order, the versions its schema_migrations table lacks.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Migration is one schema version: SQL that a store runs in a single transaction.
type Migration struct {
	Version int
	Name    string // file name without the .sql suffix, recorded for humans reading the table
	SQL     string
}

// SQLite returns the SQLite migrations in version order.
func SQLite() ([]Migration, error) { return load("sqlite") }

// Postgres returns the PostgreSQL migrations in version order.
func Postgres() ([]Migration, error) { return load("postgres") }

func load(dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(files, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s migrations: %w", dir, err)
	}
	out := make([]Migration, 0, len(entries))
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must start with a positive version and '_'", dir, e.Name())
		}
		b, err := files.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s/%s: %w", dir, e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%s migrations: version %d found where %d was expected", dir, m.Version, i+1)
		}
	}
	return out, nil
}
