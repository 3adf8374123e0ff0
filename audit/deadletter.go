package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/llmgate/llmgate/store"
)

// deadLetterFile is the JSON-lines file, in DeadLetterDir, of everything set aside for good.
const deadLetterFile = "usage-deadletter.jsonl"

// Why an entry was dead-lettered.
const (
	// reasonRejected: the database refused the record (ErrRejected); Record holds it, ready to be
	// fixed and fed back.
	reasonRejected = "rejected"
	// reasonUndecodable: a spool frame with a good checksum that is not a record this version
	// can read; Raw (or RawBase64) holds the payload.
	reasonUndecodable = "undecodable"
	// reasonTornTail: bytes at the end of a segment that do not form a frame (a crash cut a
	// write short) or fail their checksum; File holds them.
	reasonTornTail = "torn_tail"
	// reasonBadSegment: a file named like a segment without the segment magic; File holds a copy.
	reasonBadSegment = "bad_segment"
	// reasonDamaged: bytes in the middle of a segment that are not a frame or fail their
	// checksum (damage on disk); File holds them, up to the next good frame, where replay went on.
	reasonDamaged = "damaged_frame"
)

// deadEntry is one line of the dead-letter file.
type deadEntry struct {
	Time      time.Time          `json:"time"`
	Reason    string             `json:"reason"`
	Error     string             `json:"error"`
	Record    *store.UsageRecord `json:"record,omitempty"`
	Raw       string             `json:"raw,omitempty"`
	RawBase64 []byte             `json:"raw_base64,omitempty"`
	Segment   string             `json:"segment,omitempty"`
	Offset    int64              `json:"offset,omitempty"`
	File      string             `json:"file,omitempty"`
	Bytes     int64              `json:"bytes,omitempty"`

	// copyFrom, when set, names a file whose bytes from Offset on (copyLen of them; 0: to the
	// end) are saved into the dead-letter directory (File) as the entry is written.
	copyFrom string
	copyLen  int64
}

// undecodable makes the entry of a spool payload that is not a record.
func undecodable(seg segment, off int64, payload []byte, err error) deadEntry {
	e := deadEntry{Reason: reasonUndecodable, Error: err.Error(), Segment: filepath.Base(seg.path), Offset: off}
	if utf8.Valid(payload) {
		e.Raw = string(payload)
	} else {
		e.RawBase64 = payload
	}
	return e
}

// deadLetters appends entries to the dead-letter file and fsyncs it before returning, so an
// entry is on disk before the spool segment it came from is deleted. Without a directory the
// entries are only logged.
type deadLetters struct {
	dir   string
	log   *slog.Logger
	count *atomic.Int64

	mu sync.Mutex
	f  *os.File
}

func newDeadLetters(dir string, log *slog.Logger, count *atomic.Int64) *deadLetters {
	return &deadLetters{dir: dir, log: log, count: count}
}

// write records entries for good. It cannot fail as far as the caller is concerned: when the
// file cannot be written, each entry goes to the log, whole, at error level, as the last place
// it can be kept.
func (d *deadLetters) write(entries []deadEntry) {
	if len(entries) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now().UTC()
	var buf []byte
	for i := range entries {
		e := &entries[i]
		e.Time = now
		if e.copyFrom != "" {
			if err := d.saveTailLocked(e); err != nil {
				e.Error += "; saving the bytes failed: " + err.Error()
			}
		}
		line, err := json.Marshal(e)
		if err != nil { // a record always encodes; keep the entry anyway
			line = fmt.Appendf(nil, `{"reason":%q,"error":%q}`, e.Reason, err.Error())
		}
		buf = append(append(buf, line...), '\n')
		d.log.Warn("usage dead letter", "reason", e.Reason, "error", e.Error, "request_id", requestID(e),
			"segment", e.Segment, "file", e.File)
	}
	d.count.Add(int64(len(entries)))
	if err := d.appendLocked(buf); err != nil {
		for i := range entries {
			line, _ := json.Marshal(&entries[i])
			d.log.Error("usage dead letter NOT saved; this log line is its only copy", "err", err, "entry", string(line))
		}
	}
}

func requestID(e *deadEntry) string {
	if e.Record != nil {
		return e.Record.RequestID
	}
	return ""
}

func (d *deadLetters) appendLocked(buf []byte) error {
	if d.dir == "" {
		return errors.New("no dead-letter directory configured")
	}
	if d.f == nil {
		if err := os.MkdirAll(d.dir, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(d.dir, deadLetterFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		if err := syncDir(d.dir); err != nil {
			f.Close()
			return err
		}
		d.f = f
	}
	if _, err := d.f.Write(buf); err != nil {
		return err
	}
	return d.f.Sync()
}

// saveTailLocked copies e.copyFrom's bytes from e.Offset on into a file of the dead-letter
// directory and fsyncs it, setting e.File and e.Bytes.
func (d *deadLetters) saveTailLocked(e *deadEntry) error {
	if d.dir == "" {
		return errors.New("no dead-letter directory configured")
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	src, err := os.Open(e.copyFrom)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := src.Seek(e.Offset, io.SeekStart); err != nil {
		return err
	}
	name := fmt.Sprintf("%s.%d.%s", filepath.Base(e.copyFrom), e.Offset, e.Reason)
	dst, err := os.CreateTemp(d.dir, name+".*")
	if err != nil {
		return err
	}
	var r io.Reader = src
	if e.copyLen > 0 {
		r = io.LimitReader(src, e.copyLen)
	}
	n, err := io.Copy(dst, r)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(d.dir)
	}
	e.File, e.Bytes = filepath.Base(dst.Name()), n
	return err
}

func (d *deadLetters) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil {
		return fmt.Errorf("audit: dead-letter file: %w", err)
	}
	return nil
}
