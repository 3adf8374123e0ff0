package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/llmgate/llmgate/audit"
)

// TestUsageWriters: the configuration's default is audit.DefaultWriters batch writers; on
// PostgreSQL the gateway runs as many as usage.writers says, and on SQLite, whose store has one
// writing connection, one whatever it says.
func TestUsageWriters(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, "usage:\n  batch_size: 100\n"), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Usage.Writers != audit.DefaultWriters {
		t.Errorf("usage.writers defaults to %d, want %d", cfg.Usage.Writers, audit.DefaultWriters)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"sqlite", nil, 1},
		{"postgres", map[string]string{"LLMGATE_DATABASE_URL": pg.NewDatabase(t)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: "+t.TempDir()+
				"\nusage:\n  writers: 3\n")
			cfg, err := loadConfig(path, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			a, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := a.shutdown(ctx); err != nil {
					t.Error(err)
				}
			}()
			if got := a.recorder.Writers(); got != tc.want {
				t.Errorf("%d usage writers with usage.writers 3, want %d", got, tc.want)
			}
		})
	}
}
