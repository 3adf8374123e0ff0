// Package sse reads the events of a text/event-stream body one at a time, as the translating
// adapters need them: each upstream event is handed over as soon as its blank line has arrived,
// split across reads or not, with a bound on its size. It follows the event stream
// interpretation of https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
// for the fields upstreams use (data and event); id, retry, other fields and comments are
// skipped. Lines end in LF or CRLF: no upstream ends them with a lone CR, and telling a lone CR
// from the first half of a CRLF split across reads would cost a read-ahead.
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
	// line has empty Data; events without any data line are not dispatched.
	Data []byte
}

// Reader reads events from a body. It is not safe for concurrent use.
type Reader struct {
	br       *bufio.Reader
	max      int
	line     []byte // a line longer than br's buffer, being assembled
	name     []byte
	data     []byte
	hasData  bool // a data line arrived since the last dispatch, even an empty one
	returned bool // name and data were handed out: reset them before reading on
	err      error
}

// NewReader reads events from r; maxEventBytes bounds one line and one event's data.
func NewReader(r io.Reader, maxEventBytes int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufferSize), max: maxEventBytes}
}

// Next reads until an event is complete and returns it. At the end of the body it returns
// io.EOF (with the unfinished event and ErrUnterminated first, if there is one); a failure to
// read the body is returned as it is, and ErrEventTooLarge when the limit is passed. Every error
// is final: later calls return it again (io.EOF after ErrUnterminated).
func (r *Reader) Next() (Event, error) {
	if r.returned {
		r.name, r.data, r.hasData, r.returned = r.name[:0], r.data[:0], false, false
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
			return Event{Name: r.name, Data: r.data}, nil
		}
	}
	if r.err == io.EOF && r.hasData {
		r.returned = true
		return Event{Name: r.name, Data: r.data}, ErrUnterminated
	}
	return Event{}, r.err
}

// processLine handles one line and reports whether it completed an event.
func (r *Reader) processLine(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		if r.hasData {
			return true
		}
		r.name = r.name[:0] // an event without data is not dispatched, and its name forgotten
		return false
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
