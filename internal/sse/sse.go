// Package sse reads the events of a text/event-stream body one at a time, for the gateway's relay
// and the translating adapters alike: each event is handed over as soon as its blank line has
// arrived, split across reads or not, with a bound on its size. It follows the event stream
// interpretation of https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
// for the fields upstreams use (data and event); id, retry, other fields and comments are
// skipped, except that a raw Reader (NewRawReader) also hands over every event's lines as they
// came, so that a relay can pass them on untouched. Lines end in LF or CRLF: no upstream ends
// them with a lone CR, and telling a lone CR from the first half of a CRLF split across reads
// would cost a read-ahead.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// bufferSize is the line reader's buffer. Longer lines are assembled in Reader.line, so it only
// trades one copy of a long line against the memory every open stream holds.
const bufferSize = 4 << 10

var (
	// ErrEventTooLarge is returned when one line or one event's data passes the Reader's limit:
	// an upstream that never ends its event must not grow the gateway's memory without bound.
	ErrEventTooLarge = errors.New("sse: event larger than the limit")
	// ErrUnterminated is returned, with the event, when the body ends after data lines without
	// the blank line that completes their event. The spec says to discard such an event; an
	// upstream that ends its stream by closing the connection may still mean it, so the caller
	// decides. Next returns io.EOF afterwards.
	ErrUnterminated = errors.New("sse: the body ended inside an event")
)

// Event is one dispatched event. Its slices are the Reader's buffers: they are valid until the
// next call to Next.
type Event struct {
	// Name is the value of the event's last event field, empty when it has none.
	Name []byte
	// Data is the values of the event's data lines, joined by "\n". An event with an empty data
	// line has empty Data; events without any data line are not dispatched, except by a raw
	// Reader, which returns them with nil Data.
	Data []byte
	// Raw is, from a raw Reader only, the event's lines as they arrived, line ends included,
	// without the blank line that ended it.
	Raw []byte
}

// Reader reads events from a body. It is not safe for concurrent use.
type Reader struct {
	br       *bufio.Reader
	max      int
	raw      bool   // keep each event's lines (Event.Raw), and return blocks without data too
	line     []byte // a line longer than br's buffer, being assembled
	name     []byte
	data     []byte
	lines    []byte // the current event's lines as they arrived, when raw
	hasData  bool   // a data line arrived since the last dispatch, even an empty one
	returned bool   // name, data and lines were handed out: reset them before reading on
	err      error
}

// NewReader reads events from r; maxEventBytes bounds one line and one event's data.
func NewReader(r io.Reader, maxEventBytes int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufferSize), max: maxEventBytes}
}

// NewRawReader reads events from r for a relay that passes them on as they came: every event
// also carries its lines (Event.Raw), and a block of lines without data (comments such as
// keep-alives, or only an event or id field) is returned too, with nil Data, since the client
// must see it. maxEventBytes bounds one line, one event's data and one event's lines;
// bufferSize is the read buffer, and so how far ahead EventBuffered sees.
func NewRawReader(r io.Reader, maxEventBytes, bufferSize int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufferSize), max: maxEventBytes, raw: true}
}

// maxKeptBuffer is the largest buffer Reset keeps: a rare huge event must not stay alive in a
// pooled Reader.
const maxKeptBuffer = 1 << 20

// Reset makes the Reader read events from r, as a new Reader would, keeping its buffers (those
// a huge event grew are let go): a pool of Readers serves one stream after another without
// allocating. r may be nil, to let go of the last body.
func (r *Reader) Reset(body io.Reader) {
	r.br.Reset(body)
	r.line, r.name, r.data, r.lines = keep(r.line), keep(r.name), keep(r.data), keep(r.lines)
	r.hasData, r.returned, r.err = false, false, nil
}

func keep(b []byte) []byte {
	if cap(b) > maxKeptBuffer {
		return nil
	}
	return b[:0]
}

// EventBuffered reports whether a complete next event has already been read from the body, so
// that Next returns it without waiting for the body: a relay writes both before one flush.
func (r *Reader) EventBuffered() bool {
	next, _ := r.br.Peek(r.br.Buffered())
	for {
		i := bytes.IndexByte(next, '\n')
		if i < 0 {
			return false
		}
		next = next[i+1:]
		if len(next) > 0 && next[0] == '\n' || len(next) > 1 && next[0] == '\r' && next[1] == '\n' {
			return true
		}
	}
}

// Next reads until an event is complete and returns it. At the end of the body it returns
// io.EOF (with the unfinished event and ErrUnterminated first, if there is one); a failure to
// read the body is returned as it is, and ErrEventTooLarge when the limit is passed. Every error
// is final: later calls return it again (io.EOF after ErrUnterminated).
func (r *Reader) Next() (Event, error) {
	if r.returned {
		r.name, r.data, r.lines, r.hasData, r.returned = r.name[:0], r.data[:0], r.lines[:0], false, false
	}
	for r.err == nil {
		line, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(r.line)+len(line) > r.max {
				r.err = ErrEventTooLarge
				break
			}
			r.line = append(r.line, line...)
			continue
		}
		if len(r.line) > 0 {
			r.line = append(r.line, line...)
			line = r.line
		}
		// A last line without its line end still counts: it may be the blank line.
		complete := len(line) > 0 && r.processLine(line)
		r.line = r.line[:0]
		if r.err == nil {
			r.err = err
		}
		if complete {
			r.returned = true
			return r.event(), nil
		}
	}
	if r.err == io.EOF && (r.hasData || len(r.lines) > 0) {
		r.returned = true
		return r.event(), ErrUnterminated
	}
	return Event{}, r.err
}

// event is the event read so far.
func (r *Reader) event() Event {
	ev := Event{Name: r.name, Data: r.data, Raw: r.lines}
	switch {
	case !r.hasData:
		ev.Data = nil // a raw Reader's block without data
	case ev.Data == nil:
		ev.Data = []byte{} // an empty data line: empty, not absent
	}
	return ev
}

// processLine handles one line and reports whether it completed an event.
func (r *Reader) processLine(line []byte) bool {
	whole := line
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		if r.hasData || len(r.lines) > 0 {
			return true
		}
		r.name = r.name[:0] // an event without data is not dispatched, and its name forgotten
		return false
	}
	if r.raw {
		if len(r.lines)+len(whole) > r.max {
			r.err = ErrEventTooLarge
			return false
		}
		r.lines = append(r.lines, whole...)
	}
	if line[0] == ':' {
		return false // a comment: keep-alives
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "data":
		n := len(r.data) + len(value)
		if r.hasData {
			n++ // the "\n" joining it to the previous data line
		}
		if n > r.max {
			r.err = ErrEventTooLarge
			return false
		}
		if r.hasData {
			r.data = append(r.data, '\n')
		}
		r.data = append(r.data, value...)
		r.hasData = true
	case "event":
		r.name = append(r.name[:0], value...)
	}
	return false
}
