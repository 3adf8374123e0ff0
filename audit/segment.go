package audit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/llmgate/llmgate/store"
)

// Segment format, version 1 (see the package doc):
//
//	segment = magic frame*
//	magic   = "LGSPOOL1"
//	frame   = length:uint32le crc:uint32le payload[length]    crc = CRC-32C(payload)
//
// The length and checksum come first so that a reader can tell a complete frame from one cut
// short by a crash (a short header or payload) or damaged on disk (a checksum mismatch), without
// trusting anything that follows. A new format gets a new magic.
const (
	segMagic       = "LGSPOOL1"
	segSuffix      = ".seg"
	frameHeaderLen = 8
	// maxFrameLen bounds a frame: a usage record is well under 4 KiB, so a larger length is a
	// damaged header, not a record, and the reader does not allocate it.
	maxFrameLen = 16 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends the frame of rec's JSON encoding to dst.
func appendFrame(dst []byte, rec *store.UsageRecord) ([]byte, error) {
	payload, err := json.Marshal(rec)
	if err != nil {
		return dst, fmt.Errorf("audit: encode usage record: %w", err)
	}
	if len(payload) > maxFrameLen {
		return dst, fmt.Errorf("audit: usage record of %d bytes is too large to spool", len(payload))
	}
	var h [frameHeaderLen]byte
	putFrameHeader(h[:], payload)
	return append(append(dst, h[:]...), payload...), nil
}

// putFrameHeader writes payload's frame header into h.
func putFrameHeader(h, payload []byte) {
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(payload, crcTable))
}

// decodeRecord decodes a frame's payload strictly: a field this version does not know means the
// spool was written by another version of store.UsageRecord, and dropping that field silently
// would change the ledger, so it is an error (the frame is dead-lettered, whole).
func decodeRecord(payload []byte) (store.UsageRecord, error) {
	var rec store.UsageRecord
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, err
	}
	if dec.More() {
		return rec, errors.New("trailing data after the record")
	}
	return rec, nil
}

// segName is the file name of segment seq: zero-padded so names sort in sequence order.
func segName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segSuffix) }

// parseSegName returns the sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

var (
	// errEmptySegment: the file is shorter than the magic (a crash right after it was created);
	// it holds no record.
	errEmptySegment = errors.New("audit: empty spool segment")
	// errBadMagic: the file is not a segment of this format.
	errBadMagic = errors.New("audit: not a spool segment (bad magic)")
)

// frameError is a frame the reader cannot trust: everything from Off to the end of the segment
// is a tail that a crash cut short (Torn) or that was damaged.
type frameError struct {
	Off    int64
	Torn   bool
	Reason string
}

func (e *frameError) Error() string {
	return fmt.Sprintf("audit: spool frame at offset %d: %s", e.Off, e.Reason)
}

// segReader reads the frames of one segment in order.
type segReader struct {
	f   *os.File
	br  *bufio.Reader
	off int64 // offset of the next frame
}

// openSegment opens a segment and positions it at off (0: the first frame).
func openSegment(path string, off int64) (*segReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var magic [len(segMagic)]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		f.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errEmptySegment
		}
		return nil, err
	}
	if string(magic[:]) != segMagic {
		f.Close()
		return nil, errBadMagic
	}
	if off < int64(len(segMagic)) {
		off = int64(len(segMagic))
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &segReader{f: f, br: bufio.NewReaderSize(f, 256<<10), off: off}, nil
}

// next returns the next frame's payload and its offset: io.EOF at a clean end, a *frameError
// for a torn or damaged frame (the caller stops there), another error for an I/O failure.
func (s *segReader) next() (payload []byte, off int64, err error) {
	off = s.off
	var h [frameHeaderLen]byte
	if n, err := io.ReadFull(s.br, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, off, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, off, &frameError{Off: off, Torn: true, Reason: fmt.Sprintf("header cut short after %d bytes", n)}
		}
		return nil, off, err
	}
	length := binary.LittleEndian.Uint32(h[0:4])
	if length == 0 || length > maxFrameLen {
		return nil, off, &frameError{Off: off, Reason: fmt.Sprintf("implausible length %d", length)}
	}
	payload = make([]byte, length)
	if n, err := io.ReadFull(s.br, payload); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, off, &frameError{Off: off, Torn: true, Reason: fmt.Sprintf("payload cut short: %d of %d bytes", n, length)}
		}
		return nil, off, err
	}
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(h[4:8]) {
		return nil, off, &frameError{Off: off, Reason: "checksum mismatch"}
	}
	s.off += frameHeaderLen + int64(length)
	return payload, off, nil
}

func (s *segReader) close() error { return s.f.Close() }
