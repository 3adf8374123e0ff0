package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmgate/llmgate/store"
)

// gatedCollectSink blocks every insert until released, then keeps the ids it was given.
type gatedCollectSink struct {
	release chan struct{}
	mu      sync.Mutex
	seen    map[string]bool
}

func (s *gatedCollectSink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.seen[r.RequestID] = true
	}
	return len(recs), nil
}

// TestSpoolMaxBytes fills a bounded spool while the database is stuck: once the bound is reached
// further records are refused, never blocking, counted as dropped because the spool is full (in
// Stats and in the metric), and the spool never grows past the bound; when the database answers,
// exactly the records that were accepted are written.
func TestSpoolMaxBytes(t *testing.T) {
	const maxBytes = 64 << 10
	opts := spoolOpts(t)
	opts.QueueSize, opts.BatchSize = 1, 1
	opts.SpoolSegmentBytes = 16 << 10
	opts.SpoolMaxBytes = maxBytes
	reg := prometheus.NewPedanticRegistry()
	opts.Registerer = reg
	sink := &gatedCollectSink{release: make(chan struct{}), seen: map[string]bool{}}
	r := mustNew(t, sink, opts)

	var accepted, refused []string
	for i := range 2000 { // ~300 bytes each spooled: several times the bound
		x := rec(i)
		if r.Record(x) {
			accepted = append(accepted, x.RequestID)
		} else {
			refused = append(refused, x.RequestID)
		}
		if s := r.Stats(); s.SpoolBytes > maxBytes {
			t.Fatalf("after %d records the spool holds %d bytes, past its bound of %d", i+1, s.SpoolBytes, maxBytes)
		}
	}
	s := r.Stats()
	if len(refused) == 0 || s.SpoolFullDropped != int64(len(refused)) || s.Dropped != int64(len(refused)) {
		t.Fatalf("%d refused; stats: spool-full drops %d, dropped %d", len(refused), s.SpoolFullDropped, s.Dropped)
	}
	if s.SpoolBytes < maxBytes*3/4 {
		t.Errorf("the spool stopped at %d bytes, well short of its bound of %d", s.SpoolBytes, maxBytes)
	}
	if got := testutil.ToFloat64(metricByName(t, r, "llmgate_usage_spool_full_dropped_total")); got != float64(len(refused)) {
		t.Errorf("llmgate_usage_spool_full_dropped_total = %v, want %d", got, len(refused))
	}
	if got := testutil.ToFloat64(metricByName(t, r, "llmgate_usage_spool_max_bytes")); got != maxBytes {
		t.Errorf("llmgate_usage_spool_max_bytes = %v, want %d", got, maxBytes)
	}

	close(sink.release)
	waitFor(t, 20*time.Second, "replay", func() bool { return r.Stats().SpoolBytes == 0 })
	closeRecorder(t, r, 10*time.Second)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, id := range accepted {
		if !sink.seen[id] {
			t.Errorf("accepted record %s was not written", id)
		}
	}
	for _, id := range refused {
		if sink.seen[id] {
			t.Errorf("refused record %s was written", id)
		}
	}
	if len(sink.seen) != len(accepted) {
		t.Errorf("%d records written, %d accepted", len(sink.seen), len(accepted))
	}
}

// metricByName finds one of the recorder's collectors by its metric name.
func metricByName(t *testing.T, r *Recorder, name string) prometheus.Collector {
	t.Helper()
	for _, c := range r.metrics.collectors {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			if strings.Contains(d.String(), `fqName: "`+name+`"`) {
				return c
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// TestSpoolMaxBytesBatch: the writer's batches spooled during an outage respect the bound too,
// keeping as many whole records as fit.
func TestSpoolMaxBytesBatch(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 8<<10, time.Hour, quiet, nil, 20<<10)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]store.UsageRecord, 500)
	for i := range recs {
		recs[i] = rec(i)
	}
	n, err := s.appendBatch(recs)
	if !errors.Is(err, errSpoolFull) || n == 0 || n == len(recs) {
		t.Fatalf("appendBatch = %d, %v; want some records and errSpoolFull", n, err)
	}
	if _, b := s.backlog(); b > 20<<10 {
		t.Errorf("spool of %d bytes, past its bound", b)
	}
	s.close()
	var got []store.UsageRecord
	for _, p := range segPaths(t, dir) {
		recs, errs := readAll(t, p)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", p, errs)
		}
		got = append(got, recs...)
	}
	if len(got) != n {
		t.Fatalf("read back %d records, %d were reported spooled", len(got), n)
	}
	for i := range got {
		if got[i].RequestID != recs[i].RequestID {
			t.Fatalf("record %d is %s, want %s", i, got[i].RequestID, recs[i].RequestID)
		}
	}
}

// testSegment writes n records into one segment and returns its path, its bytes and the offset
// of each frame (plus the end of the file as the last element).
func testSegment(t *testing.T, n int) (string, []byte, []int64) {
	t.Helper()
	dir := t.TempDir()
	s := openTestSpool(t, dir, 1<<20)
	for i := range n {
		r := rec(i)
		if err := s.appendOne(&r); err != nil {
			t.Fatal(err)
		}
	}
	s.close()
	path := segPaths(t, dir)[0]
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := openSegment(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.close()
	var offs []int64
	for {
		_, off, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	if len(offs) != n {
		t.Fatalf("%d frames, want %d", len(offs), n)
	}
	return path, full, append(offs, int64(len(full)))
}

// recovered reads a segment and returns which of records 0..n-1 came back.
func recovered(t *testing.T, path string, n int) []bool {
	t.Helper()
	recs, _ := readAll(t, path)
	got := make([]bool, n)
	for _, r := range recs {
		var i int
		if _, err := fmt.Sscanf(r.RequestID, "req-%d", &i); err != nil || i < 0 || i >= n {
			t.Fatalf("unexpected record %q", r.RequestID)
		}
		got[i] = true
	}
	return got
}

// frameAt returns the index of the frame holding byte pos.
func frameAt(offs []int64, pos int64) int {
	for i := 0; i+1 < len(offs); i++ {
		if pos >= offs[i] && pos < offs[i+1] {
			return i
		}
	}
	return -1
}

// TestSpoolResyncTable damages a segment at every byte after its header, in three ways: a
// flipped byte, 7 bytes of garbage inserted, and 3 bytes removed. Each time the reader must find
// its way to the next good frame: only the frames the damage touched are lost, every other
// record is read back.
func TestSpoolResyncTable(t *testing.T) {
	const n = 4
	path, full, offs := testSegment(t, n)
	damage := []struct {
		name  string
		do    func(pos int) []byte
		width int // bytes of the original damaged
	}{
		{"flip", func(pos int) []byte { b := slices.Clone(full); b[pos] ^= 0x5a; return b }, 1},
		{"insert", func(pos int) []byte { return slices.Concat(full[:pos], []byte("\xffgarbag"), full[pos:]) }, 1},
		{"remove", func(pos int) []byte { return slices.Concat(full[:pos], full[min(pos+3, len(full)):]) }, 3},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			failures := 0
			for pos := len(segMagic); pos < len(full); pos++ {
				if err := os.WriteFile(path, d.do(pos), 0o600); err != nil {
					t.Fatal(err)
				}
				got := recovered(t, path, n)
				hit := frameAt(offs, int64(pos))
				last := frameAt(offs, int64(min(pos+d.width, len(full))-1))
				for i, ok := range got {
					// An insertion exactly at a frame boundary damages no frame.
					lost := i >= hit && i <= last && !(d.name == "insert" && int64(pos) == offs[i])
					if ok == lost {
						if failures++; failures <= 5 {
							t.Errorf("%s at byte %d (frame %d): record %d read back: %v", d.name, pos, hit, i, ok)
						}
					}
				}
			}
			if failures > 5 {
				t.Errorf("... %d failures in all", failures)
			}
		})
	}
}

// TestSpoolResyncReplay is the same end to end: a segment with damaged frames in the middle (a
// flipped payload byte, a length cut short, garbage between two frames) replays every other
// record into the store, and each damaged stretch goes to the dead-letter directory, once.
func TestSpoolResyncReplay(t *testing.T) {
	const n = 30
	opts := spoolOpts(t)
	path, full, offs := testSegment(t, n)
	bad := slices.Clone(full)
	bad[offs[5]+frameHeaderLen+10] ^= 0xff // record 5: payload byte
	bad[offs[12]+frameHeaderLen-8] = 0x03  // record 12: a length byte (checksum or length check fails)
	bad = slices.Concat(bad[:offs[20]], []byte("garbage between frames"), bad[offs[20]:])
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(opts.SpoolDir, filepath.Base(path)), bad, 0o600); err != nil {
		t.Fatal(err)
	}

	st := newStore(t)
	r := mustNew(t, st, opts)
	waitFor(t, 10*time.Second, "replay", func() bool { return r.Stats().SpoolBytes == 0 })
	closeRecorder(t, r, 10*time.Second)
	rows, _ := st.ListUsage(t.Context(), store.UsageFilter{Limit: 1000})
	ids := map[string]bool{}
	for _, x := range rows {
		ids[x.RequestID] = true
	}
	for i := range n {
		want := i != 5 && i != 12
		if ids[rec(i).RequestID] != want {
			t.Errorf("record %d in the ledger: %v, want %v", i, !want, want)
		}
	}
	entries := readDeadLetters(t, opts.DeadLetterDir)
	if len(entries) != 3 {
		t.Fatalf("%d dead letters, want 3 (two damaged frames, one stretch of garbage): %+v", len(entries), entries)
	}
	for _, e := range entries {
		if e.Reason != reasonDamaged || e.File == "" || e.Bytes == 0 || e.Bytes > int64(len(full)/n)+64 {
			t.Errorf("dead letter %+v: want a damaged frame's bytes saved, no more than a frame", e)
		}
	}
	if s := r.Stats(); s.DeadLettered != 3 {
		t.Errorf("DeadLettered = %d, want 3", s.DeadLettered)
	}
}

// TestSpoolReadsVersion1 replays a segment in the framing of the previous release (no frame
// magic, "LGSPOOL1"), torn tail included: a spool left on disk by it is not lost in an upgrade.
func TestSpoolReadsVersion1(t *testing.T) {
	opts := spoolOpts(t)
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	seg := []byte("LGSPOOL1")
	for i := range 20 {
		seg = appendV1Frame(t, seg, rec(i))
	}
	seg = appendV1Frame(t, seg, rec(20))
	seg = seg[:len(seg)-7] // record 20 torn by a crash
	if err := os.WriteFile(filepath.Join(opts.SpoolDir, segName(7)), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	r := mustNew(t, st, opts)
	waitFor(t, 10*time.Second, "replay", func() bool { return r.Stats().SpoolBytes == 0 })
	r.Record(rec(21)) // a fresh record, into a new segment of the current format
	closeRecorder(t, r, 10*time.Second)
	if got := count(t, st); got != 21 {
		t.Errorf("%d rows, want 20 from the old segment and 1 fresh", got)
	}
	entries := readDeadLetters(t, opts.DeadLetterDir)
	if len(entries) != 1 || entries[0].Reason != reasonTornTail {
		t.Errorf("dead letters %+v, want the torn tail", entries)
	}
}

// appendV1Frame appends rec in the previous release's framing: length (uint32 little endian),
// CRC-32C of the payload, payload.
func appendV1Frame(t *testing.T, dst []byte, r store.UsageRecord) []byte {
	t.Helper()
	payload, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	return append(dst, payload...)
}
