package audit

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/store"
)

var errSpoolClosed = errors.New("audit: spool closed")

// errSpoolFull: the spool is at its bound (Options.SpoolMaxBytes); the records were not spooled.
var errSpoolFull = errors.New("audit: spool full (usage.spool_max_bytes)")

// segment is one spool file.
type segment struct {
	seq  uint64
	path string
	size int64
}

// spool is the append-only segment files under one directory: one active segment taking
// appends, sealed segments waiting for the replayer, oldest first.
//
// Appends are one write(2) of whole frames under mu, never an fsync: the request path pays for a
// copy into the page cache. A background goroutine fsyncs the active segment and the directory
// every sync interval, and fsyncs then closes each rotated segment; so a process crash loses
// nothing appended, a machine crash at most one interval.
type spool struct {
	dir      string
	segBytes int64
	maxBytes int64 // bound of bytes, every segment together; <= 0: none
	log      *slog.Logger
	onSeal   func() // wakes the replayer; must not block (called under mu)
	lock     *os.File
	bytes    atomic.Int64 // on disk: every segment, active included
	frames   sync.Pool    // *[]byte frame buffers for appendOne

	mu       sync.Mutex
	closed   bool
	active   *os.File // nil until the first append after a seal
	cur      segment  // the active segment
	dirty    bool     // active has appends not yet fsynced
	dirDirty bool     // a segment was created since the last directory fsync
	toSync   []*os.File
	sealed   []segment
	nextSeq  uint64

	stopSync  chan struct{}
	syncDone  chan struct{}
	closeOnce sync.Once
}

// openSpool opens (creating it) the spool directory, takes its lock, and lists the segments a
// previous run left: they are all sealed, and new appends go to a new segment after them. The
// spool refuses appends that would take it past maxBytes (<= 0: no bound).
func openSpool(dir string, segBytes int64, syncEvery time.Duration, log *slog.Logger, onSeal func(), maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: spool dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &spool{dir: dir, segBytes: segBytes, maxBytes: maxBytes, log: log, onSeal: onSeal, lock: lock, nextSeq: 1,
		stopSync: make(chan struct{}), syncDone: make(chan struct{})}
	entries, err := os.ReadDir(dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("audit: spool dir: %w", err)
	}
	for _, e := range entries {
		seq, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			lock.Close()
			return nil, fmt.Errorf("audit: spool dir: %w", err)
		}
		s.sealed = append(s.sealed, segment{seq: seq, path: filepath.Join(dir, e.Name()), size: info.Size()})
		s.bytes.Add(info.Size())
		s.nextSeq = max(s.nextSeq, seq+1)
	}
	slices.SortFunc(s.sealed, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	go s.syncLoop(syncEvery)
	return s, nil
}

// appendOne spools one record: the request path's overflow.
func (s *spool) appendOne(rec *store.UsageRecord) error {
	bp, _ := s.frames.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	buf, err := appendFrame((*bp)[:0], rec)
	if err == nil {
		_, err = s.write(buf, nil)
	}
	if cap(buf) <= 64<<10 { // do not keep a freak record's buffer alive
		*bp = buf[:0]
		s.frames.Put(bp)
	}
	return err
}

// appendBatch spools records in writes of about 256 KiB at most, taking the lock once per write,
// so a large batch spooled by the writer does not hold up the request path's appends for long.
// It returns how many records were appended before an error; when the spool is full, that is
// the records that fitted (whole, in order), and the error is errSpoolFull.
func (s *spool) appendBatch(recs []store.UsageRecord) (int, error) {
	chunk := min(256<<10, int(s.segBytes)) // so a chunk never makes a segment much larger
	buf := make([]byte, 0, chunk+4096)
	var ends []int // where each frame in buf ends
	done, failed := 0, 0
	for i := range recs {
		var err error
		if buf, err = appendFrame(buf, &recs[i]); err != nil {
			// An unencodable record cannot be spooled; write the others, report this one.
			s.log.Error("usage record cannot be spooled", "request_id", recs[i].RequestID, "err", err)
			failed++
		} else {
			ends = append(ends, len(buf))
		}
		if len(ends) > 0 && (len(buf) >= chunk || i == len(recs)-1) {
			n, err := s.write(buf, ends)
			done += n
			if err != nil {
				return done, err
			}
			buf, ends = buf[:0], ends[:0]
		}
	}
	if failed > 0 {
		return done, fmt.Errorf("audit: %d usage records could not be encoded", failed)
	}
	return done, nil
}

// write appends whole frames to the active segment, rotating first when they would take it
// past the segment size. ends are the offsets in frames where each frame ends (nil: frames is
// one frame). It returns how many frames it appended: all of them, or, when the spool would go
// past its bound, as many as fit, with errSpoolFull.
func (s *spool) write(frames []byte, ends []int) (int, error) {
	if ends == nil {
		ends = []int{len(frames)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errSpoolClosed
	}
	n := len(ends)
	for n > 0 && !s.fitsLocked(int64(ends[n-1])) {
		n--
	}
	if n == 0 {
		return 0, errSpoolFull
	}
	frames = frames[:ends[n-1]]
	if s.active != nil && s.cur.size > int64(len(segMagic)) && s.cur.size+int64(len(frames)) > s.segBytes {
		s.sealLocked()
	}
	if s.active == nil {
		if err := s.createLocked(); err != nil {
			return 0, err
		}
	}
	w, err := s.active.Write(frames)
	s.cur.size += int64(w)
	s.bytes.Add(int64(w))
	s.dirty = true
	if err != nil {
		// Part of a frame may be on disk: end the segment here, so that torn frame is its tail
		// (which the replayer sets aside), and start a fresh segment at the next append.
		s.sealLocked()
		return 0, fmt.Errorf("audit: spool write: %w", err)
	}
	if n < len(ends) {
		return n, errSpoolFull
	}
	return n, nil
}

// typicalFrameBytes is the room a usage record of ordinary size takes in the spool, framing
// included, generously: readiness calls the spool full when it could not take one.
const typicalFrameBytes = 4 << 10

// fits reports whether n more bytes of frames would be taken now.
func (s *spool) fits(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fitsLocked(n)
}

// fitsLocked reports whether n more bytes of frames keep the spool within its bound, counting
// the header of the segment they would start.
func (s *spool) fitsLocked(n int64) bool {
	if s.maxBytes <= 0 {
		return true
	}
	if s.active == nil || (s.cur.size > int64(len(segMagic)) && s.cur.size+n > s.segBytes) {
		n += int64(len(segMagic))
	}
	return s.bytes.Load()+n <= s.maxBytes
}

// createLocked starts a new active segment. The directory entry is fsynced by the sync loop.
func (s *spool) createLocked() error {
	seg := segment{seq: s.nextSeq, path: filepath.Join(s.dir, segName(s.nextSeq))}
	s.nextSeq++ // even on failure: a leftover file of that name must not block every append
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("audit: spool segment: %w", err)
	}
	if _, err := f.WriteString(segMagic); err != nil {
		f.Close()
		os.Remove(seg.path)
		return fmt.Errorf("audit: spool segment: %w", err)
	}
	seg.size = int64(len(segMagic))
	s.active, s.cur, s.dirDirty = f, seg, true
	s.bytes.Add(seg.size)
	return nil
}

// sealLocked ends the active segment: it becomes replayable at once, and the sync loop fsyncs
// and closes it. A segment holding no frame is deleted instead.
func (s *spool) sealLocked() {
	if s.active == nil {
		return
	}
	if s.cur.size <= int64(len(segMagic)) {
		s.active.Close()
		os.Remove(s.cur.path)
		s.bytes.Add(-s.cur.size)
	} else {
		s.toSync = append(s.toSync, s.active)
		s.sealed = append(s.sealed, s.cur)
		if s.onSeal != nil {
			s.onSeal()
		}
	}
	s.active, s.cur, s.dirty = nil, segment{}, false
}

// sealIfIdle seals the active segment when no sealed one is waiting, so the replayer can take
// it; it reports whether it did.
func (s *spool) sealIfIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.sealed) > 0 || s.active == nil || s.cur.size <= int64(len(segMagic)) {
		return false
	}
	s.sealLocked()
	return true
}

// oldest returns the oldest sealed segment.
func (s *spool) oldest() (segment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sealed) == 0 {
		return segment{}, false
	}
	return s.sealed[0], true
}

// remove deletes a sealed segment whose records are all committed or dead-lettered. The
// directory is not fsynced for it: a deletion lost in a machine crash only replays records the
// database deduplicates.
func (s *spool) remove(seg segment) error {
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit: delete spool segment: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.sealed, func(x segment) bool { return x.seq == seg.seq }); i >= 0 {
		s.sealed = slices.Delete(s.sealed, i, i+1)
		s.bytes.Add(-seg.size)
	}
	return nil
}

// backlog returns the number of segments holding records and their bytes on disk.
func (s *spool) backlog() (segments int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	segments = len(s.sealed)
	if s.active != nil {
		segments++
	}
	return segments, s.bytes.Load()
}

func (s *spool) syncLoop(every time.Duration) {
	defer close(s.syncDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopSync:
			return
		case <-t.C:
			if err := s.syncOnce(); err != nil {
				s.log.Error("usage spool fsync failed: a machine crash could lose recent spool records", "err", err)
			}
		}
	}
}

// syncOnce fsyncs the active segment if it changed, fsyncs and closes rotated segments, and
// fsyncs the directory if a segment was created. The fsyncs run outside mu, so appends go on
// meanwhile. Only the sync loop, or close after it stopped, calls it: it alone closes the files
// in toSync, so the active file it took cannot be closed under it.
func (s *spool) syncOnce() error {
	s.mu.Lock()
	var active *os.File
	if s.dirty {
		active, s.dirty = s.active, false
	}
	rotated := s.toSync
	s.toSync = nil
	dir := s.dirDirty
	s.dirDirty = false
	s.mu.Unlock()

	var errs []error
	for _, f := range rotated {
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if active != nil {
		if err := active.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if dir {
		if err := syncDir(s.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close stops the sync loop, seals the active segment and fsyncs everything, then releases the
// directory lock. Appends after close fail with errSpoolClosed.
func (s *spool) close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stopSync)
		<-s.syncDone
		s.mu.Lock()
		s.closed = true
		if s.active != nil {
			if s.cur.size <= int64(len(segMagic)) {
				s.active.Close()
				os.Remove(s.cur.path)
				s.bytes.Add(-s.cur.size)
			} else {
				s.toSync = append(s.toSync, s.active)
				s.sealed = append(s.sealed, s.cur)
			}
			s.active, s.cur = nil, segment{}
		}
		s.dirDirty = true
		s.mu.Unlock()
		err = s.syncOnce()
		if lerr := s.lock.Close(); lerr != nil { // closing the file releases the flock
			err = errors.Join(err, lerr)
		}
		if err != nil {
			err = fmt.Errorf("audit: spool close: %w", err)
		}
	})
	return err
}

// syncDir fsyncs a directory, so the files created in it (or renamed into it) survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
