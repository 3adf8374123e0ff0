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

// Segment format, version 2 (see the package doc):
//
//	segment = "LGSPOOL2" frame*
//	frame   = magic:"\xffLGF" length:uint32le crc:uint32le payload[length]
//	crc     = CRC-32C(length bytes, then payload)
//
// The length and checksum come before the payload so that a reader can tell a complete frame
// from one cut short by a crash (a short header or payload) or damaged on disk (a checksum
// mismatch) without trusting anything that follows; the checksum covers the length too, so a
// damaged length is caught as surely as a damaged payload. The magic is what a reader scans for
// after damage: it goes on at the next offset where a whole frame validates, so damage costs the
// records it touched, not the rest of the segment. Its first byte, 0xFF, never occurs in UTF-8,
// hence never in a payload (encoding/json writes valid UTF-8 only), so the scan stops only at
// frame starts and at rare coincidences in a header's binary fields, which the checksum refuses.
//
// Version 1, written by earlier releases, is still read: "LGSPOOL1" then frames of
// length:uint32le crc:uint32le payload, crc = CRC-32C(payload). Without a magic to scan for, a
// reader of version 1 stops at its first bad frame and sets the rest of the segment aside, as
// those releases did.
const (
	segMagic       = "LGSPOOL2"
	segMagicV1     = "LGSPOOL1"
	segSuffix      = ".seg"
	frameMagic     = "\xffLGF"
	frameHeaderLen = 12 // magic, length, checksum
	v1HeaderLen    = 8
	// maxFrameLen bounds a frame: a usage record is well under 4 KiB, so a larger length is a
	// damaged header, not a record, and the reader does not allocate it.
	maxFrameLen = 16 << 20
	// scanChunk is how much a reader looking for the next frame after damage reads at a time.
	scanChunk = 64 << 10
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
	copy(h, frameMagic)
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[8:12], frameCRC(h[4:8], payload))
}

func frameCRC(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, crcTable), crcTable, payload)
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

// frameError is a stretch of a segment the reader cannot trust, from Off (where a frame was
// expected) to End (where the next frame that validates starts, or the end of the segment). The
// reader has moved on to End when it returns one.
type frameError struct {
	Off, End int64
	// Torn: the frame ran past the end of the segment (a crash cut a write short, if End is the
	// end too).
	Torn   bool
	Reason string
}

func (e *frameError) Error() string {
	return fmt.Sprintf("audit: spool frame at offset %d: %s (%d bytes skipped)", e.Off, e.Reason, e.End-e.Off)
}

// segReader reads the frames of one segment in order.
type segReader struct {
	f    *os.File
	br   *bufio.Reader
	off  int64 // offset of the next frame
	size int64 // of the file, when opened: a sealed segment does not grow
	v1   bool
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
	if string(magic[:]) != segMagic && string(magic[:]) != segMagicV1 {
		f.Close()
		return nil, errBadMagic
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &segReader{f: f, br: bufio.NewReaderSize(f, 256<<10), size: info.Size(), v1: string(magic[:]) == segMagicV1}
	if err := s.seek(max(off, int64(len(segMagic)))); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *segReader) seek(off int64) error {
	if _, err := s.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	s.br.Reset(s.f)
	s.off = off
	return nil
}

// next returns the next frame's payload and its offset: io.EOF at a clean end, a *frameError
// for a torn or damaged stretch (the reader has skipped it: call next again), another error for
// an I/O failure.
func (s *segReader) next() (payload []byte, off int64, err error) {
	off = s.off
	payload, fe, err := s.read()
	if err != nil {
		return nil, off, err
	}
	if fe != nil {
		fe.Off, fe.End = off, s.size
		if !s.v1 {
			if fe.End, err = s.resync(off + 1); err != nil {
				return nil, off, err
			}
		}
		if err := s.seek(fe.End); err != nil {
			return nil, off, err
		}
		return nil, off, fe
	}
	return payload, off, nil
}

// read reads the frame at s.off from the buffered reader: its payload, or why it is no frame.
func (s *segReader) read() ([]byte, *frameError, error) {
	hlen := frameHeaderLen
	if s.v1 {
		hlen = v1HeaderLen
	}
	var h [frameHeaderLen]byte
	n, err := io.ReadFull(s.br, h[:hlen])
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil, io.EOF
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		return nil, nil, err
	case !s.v1 && string(h[:min(n, len(frameMagic))]) != frameMagic[:min(n, len(frameMagic))]:
		return nil, &frameError{Reason: "no frame magic"}, nil
	case err != nil:
		return nil, &frameError{Torn: true, Reason: fmt.Sprintf("header cut short after %d bytes", n)}, nil
	}
	lenb, crc := h[0:4], binary.LittleEndian.Uint32(h[4:8])
	if !s.v1 {
		lenb, crc = h[4:8], binary.LittleEndian.Uint32(h[8:12])
	}
	length := binary.LittleEndian.Uint32(lenb)
	if length == 0 || length > maxFrameLen {
		return nil, &frameError{Reason: fmt.Sprintf("implausible length %d", length)}, nil
	}
	if rest := s.size - s.off - int64(hlen); int64(length) > rest {
		return nil, &frameError{Torn: true, Reason: fmt.Sprintf("payload cut short: %d of %d bytes", max(rest, 0), length)}, nil
	}
	payload := make([]byte, length)
	if n, err := io.ReadFull(s.br, payload); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &frameError{Torn: true, Reason: fmt.Sprintf("payload cut short: %d of %d bytes", n, length)}, nil
		}
		return nil, nil, err
	}
	want := crc32.Checksum(payload, crcTable)
	if !s.v1 {
		want = frameCRC(lenb, payload)
	}
	if want != crc {
		return nil, &frameError{Reason: "checksum mismatch"}, nil
	}
	s.off += int64(hlen) + int64(length)
	return payload, nil, nil
}

// resync returns the offset of the first frame at or after from that validates whole, or the
// end of the segment when there is none.
func (s *segReader) resync(from int64) (int64, error) {
	buf := make([]byte, scanChunk+len(frameMagic)-1)
	for pos := from; pos < s.size; pos += scanChunk {
		n, err := s.f.ReadAt(buf[:min(int64(len(buf)), s.size-pos)], pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		chunk := buf[:n]
		for i := 0; ; {
			j := bytes.Index(chunk[i:], []byte(frameMagic))
			if j < 0 || i+j >= scanChunk { // a magic starting past the chunk is the next chunk's
				break
			}
			cand := pos + int64(i+j)
			ok, err := s.validAt(cand)
			if err != nil {
				return 0, err
			}
			if ok {
				return cand, nil
			}
			i += j + 1
		}
	}
	return s.size, nil
}

// validAt reports whether a whole version 2 frame with a good checksum starts at off.
func (s *segReader) validAt(off int64) (bool, error) {
	var h [frameHeaderLen]byte
	if off+frameHeaderLen > s.size {
		return false, nil
	}
	if _, err := s.f.ReadAt(h[:], off); err != nil {
		return false, err
	}
	length := int64(binary.LittleEndian.Uint32(h[4:8]))
	if string(h[:4]) != frameMagic || length == 0 || length > maxFrameLen || length > s.size-off-frameHeaderLen {
		return false, nil
	}
	payload := make([]byte, length)
	if _, err := s.f.ReadAt(payload, off+frameHeaderLen); err != nil {
		return false, err
	}
	return frameCRC(h[4:8], payload) == binary.LittleEndian.Uint32(h[8:12]), nil
}

func (s *segReader) close() error { return s.f.Close() }
