//go:build !unix

package audit

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir only creates dir/LOCK where flock does not exist: two recorders must not share a
// spool directory there, and nothing stops them.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: spool lock: %w", err)
	}
	return f, nil
}
