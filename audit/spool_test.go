package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

func openTestSpool(t *testing.T, dir string, segBytes int64) *spool {
	t.Helper()
	s, err := openSpool(dir, segBytes, time.Hour, quiet, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readAll reads a segment's records, going on past damaged frames as far as the reader can,
// and returns the frame errors it met (an error opening the segment is the only one, alone).
func readAll(t *testing.T, path string) ([]store.UsageRecord, []error) {
	t.Helper()
	sr, err := openSegment(path, 0)
	if err != nil {
		return nil, []error{err}
	}
	defer sr.close()
	var out []store.UsageRecord
	var errs []error
	for {
		before := sr.off
		p, _, err := sr.next()
		if errors.Is(err, io.EOF) {
			return out, errs
		}
		if err != nil {
			errs = append(errs, err)
			var fe *frameError
			if !errors.As(err, &fe) || sr.off == before {
				return out, errs // the reader cannot go on
			}
			continue
		}
		r, err := decodeRecord(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
}

func segPaths(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	return paths
}

func TestSpoolRoundTripAndRotation(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir, 4096) // a few records per segment
	cost := int64(12345)
	want := make([]store.UsageRecord, 0, 100)
	for i := range 100 {
		r := rec(i)
		r.CostPicoUSD, r.SessionID, r.Stream = &cost, "sess\x00ion\n\"é", true
		want = append(want, r)
	}
	for i := range 50 {
		if err := s.appendOne(&want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.appendBatch(want[50:]); n != 50 || err != nil {
		t.Fatalf("appendBatch = %d, %v", n, err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	paths := segPaths(t, dir)
	if len(paths) < 5 {
		t.Fatalf("%d segments of at most 4 KiB for 100 records, want several", len(paths))
	}
	var got []store.UsageRecord
	for _, p := range paths {
		if fi, _ := os.Stat(p); fi.Size() > 4096+1024 {
			t.Errorf("%s is %d bytes, past the segment size", p, fi.Size())
		}
		recs, errs := readAll(t, p)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", p, errs)
		}
		got = append(got, recs...)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.RequestID != w.RequestID || *g.CostPicoUSD != *w.CostPicoUSD || g.SessionID != w.SessionID ||
			!g.StartedAt.Equal(w.StartedAt) || g.Stream != w.Stream || g.PromptTokens != w.PromptTokens {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
	}
	// A new spool on the directory finds the segments sealed, in order, and appends after them.
	s2 := openTestSpool(t, dir, 4096)
	defer s2.close()
	if len(s2.sealed) != len(paths) || s2.sealed[0].path != paths[0] || s2.nextSeq <= s2.sealed[len(paths)-1].seq {
		t.Errorf("reopened: sealed %v, next %d", s2.sealed, s2.nextSeq)
	}
	if _, b := s2.backlog(); b == 0 {
		t.Error("reopened spool reports no bytes")
	}
}

// TestTornTail cuts a segment's last frame at every possible point: the frames before it read
// back, and the cut is reported as a torn frame, never as a clean end or a decoding failure.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir, 1<<20)
	for i := range 3 {
		r := rec(i)
		if err := s.appendOne(&r); err != nil {
			t.Fatal(err)
		}
	}
	s.close()
	path := segPaths(t, dir)[0]
	full, _ := os.ReadFile(path)
	recs, errs := readAll(t, path)
	if len(errs) > 0 || len(recs) != 3 {
		t.Fatalf("intact segment: %d records, %v", len(recs), errs)
	}
	sr, _ := openSegment(path, 0)
	sr.next()
	sr.next()
	lastOff := sr.off
	sr.close()

	// frameErr returns the only error of errs as a *frameError.
	frameErr := func(errs []error) *frameError {
		var fe *frameError
		if len(errs) != 1 || !errors.As(errs[0], &fe) {
			return nil
		}
		return fe
	}
	for cut := lastOff + 1; cut < int64(len(full)); cut++ {
		os.WriteFile(path, full[:cut], 0o600)
		recs, errs := readAll(t, path)
		if fe := frameErr(errs); len(recs) != 2 || fe == nil || !fe.Torn || fe.Off != lastOff || fe.End != cut {
			t.Fatalf("cut at %d: %d records, %v", cut, len(recs), errs)
		}
	}
	// A flipped byte in the last payload is a checksum failure.
	bad := slices.Clone(full)
	bad[len(bad)-2] ^= 0x55
	os.WriteFile(path, bad, 0o600)
	recs, errs = readAll(t, path)
	if fe := frameErr(errs); len(recs) != 2 || fe == nil || fe.Torn || !strings.Contains(fe.Reason, "checksum") {
		t.Fatalf("flipped byte: %d records, %v", len(recs), errs)
	}
	// Garbage after the last frame: a huge length, caught before any allocation.
	os.WriteFile(path, append(slices.Clone(full), 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5), 0o600)
	recs, errs = readAll(t, path)
	if fe := frameErr(errs); len(recs) != 3 || fe == nil || fe.Off != int64(len(full)) || fe.End != int64(len(full))+9 {
		t.Fatalf("garbage tail: %d records, %v", len(recs), errs)
	}
}

// TestReplayTornSegment is crash recovery end to end: a previous run's segment whose last
// record was cut short replays every whole record, saves the torn bytes to the dead-letter
// directory and deletes the segment; an empty segment (a crash right after its creation), a
// file that is not a segment, and a frame that is not a record are handled without stopping.
func TestReplayTornSegment(t *testing.T) {
	opts := spoolOpts(t)
	s := openTestSpool(t, opts.SpoolDir, 1<<20)
	for i := range 100 {
		r := rec(i)
		if err := s.appendOne(&r); err != nil {
			t.Fatal(err)
		}
	}
	// A frame with a good checksum that is not a record of this version.
	frame := []byte(`{"RequestID":"from-the-future","FieldAddedLater":1}`)
	buf := appendRawFrame(nil, frame)
	if _, err := s.write(buf, nil); err != nil {
		t.Fatal(err)
	}
	s.close()
	path := segPaths(t, opts.SpoolDir)[0]
	full, _ := os.ReadFile(path)
	r99 := rec(99)
	os.WriteFile(path, full[:len(full)-len(buf)-5], 0o600) // the weird frame gone, record 99 torn
	os.WriteFile(filepath.Join(opts.SpoolDir, segName(90)), []byte("LGSP"), 0o600)
	os.WriteFile(filepath.Join(opts.SpoolDir, segName(91)), []byte("not a segment at all"), 0o600)
	s = openTestSpool(t, opts.SpoolDir, 1<<20)
	s.write(buf, nil) // in a later segment: undecodable
	r100 := rec(100)
	s.appendOne(&r100)
	s.close()

	st := newStore(t)
	r := mustNew(t, st, opts)
	waitFor(t, 10*time.Second, "replay", func() bool { return r.Stats().SpoolBytes == 0 })
	closeRecorder(t, r, 10*time.Second)
	recs, _ := st.ListUsage(t.Context(), store.UsageFilter{Limit: 1000})
	ids := map[string]bool{}
	for _, x := range recs {
		ids[x.RequestID] = true
	}
	if len(recs) != 100 || ids[r99.RequestID] || !ids[r100.RequestID] {
		t.Errorf("%d rows (record 99 present: %v, record 100 present: %v); want 0..98 and 100",
			len(recs), ids[r99.RequestID], ids[r100.RequestID])
	}
	entries := readDeadLetters(t, opts.DeadLetterDir)
	reasons := map[string]int{}
	for _, e := range entries {
		reasons[e.Reason]++
		if e.File != "" {
			if _, err := os.Stat(filepath.Join(opts.DeadLetterDir, e.File)); err != nil {
				t.Errorf("dead letter %s: saved bytes: %v", e.Reason, err)
			}
		}
	}
	if reasons[reasonTornTail] != 1 || reasons[reasonBadSegment] != 1 || reasons[reasonUndecodable] != 1 || len(entries) != 3 {
		t.Errorf("dead letters %v, want one torn tail, one bad segment, one undecodable", reasons)
	}
	if s := r.Stats(); s.DeadLettered != 3 {
		t.Errorf("DeadLettered = %d, want 3", s.DeadLettered)
	}
	if left := segPaths(t, opts.SpoolDir); len(left) != 0 {
		t.Errorf("segments left after replay: %v", left)
	}
}

func appendRawFrame(dst, payload []byte) []byte {
	h := make([]byte, frameHeaderLen)
	putFrameHeader(h, payload)
	return append(append(dst, h...), payload...)
}

func readDeadLetters(t *testing.T, dir string) []deadEntry {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, deadLetterFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []deadEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e deadEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}
