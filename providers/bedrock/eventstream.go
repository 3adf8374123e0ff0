package bedrock

import (
	"errors"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"
)

// This file reads AWS's binary event-stream framing (application/vnd.amazon.eventstream;
// PROVIDERS-2.md §4.7) with the SDK's own decoder, which checks both CRCs and the length limits,
// and classifies each message by its :message-type header.

// frameKind is a message's :message-type.
type frameKind uint8

const (
	frameEvent     frameKind = iota + 1 // an event of the answer (:event-type names it)
	frameException                      // a modelled exception (:exception-type names it)
	frameError                          // an unmodelled error (:error-code, :error-message)
)

// frame is one decoded message. Payload is valid until the next call of next.
type frame struct {
	kind    frameKind
	name    string // :event-type, :exception-type or :error-code
	message string // :error-message of an error frame
	payload []byte
}

// errBadFrame is a message the decoder refused (a CRC mismatch, a length beyond the limits, a
// header it cannot read), a message cut short by the end of the body, or one without a
// :message-type it knows: the stream cannot be followed past it.
var errBadFrame = errors.New("bedrock: malformed event-stream message")

// frameReader reads the messages of an event-stream body one at a time. Not safe for
// concurrent use.
type frameReader struct {
	r   countingReader
	dec *eventstream.Decoder
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: countingReader{r: r}, dec: eventstream.NewDecoder(), buf: make([]byte, 0, 10<<10)}
}

// next returns the next message, io.EOF at the end of the body between two messages, or an
// error wrapping errBadFrame. Any other error of the body (a reset connection) is returned as
// it is.
func (f *frameReader) next() (frame, error) {
	f.r.n = 0
	m, err := f.dec.Decode(&f.r, f.buf)
	if err != nil {
		var ce eventstream.ChecksumError
		var le eventstream.LengthError
		switch {
		case errors.Is(err, io.EOF) && f.r.n == 0:
			return frame{}, io.EOF
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			if f.r.err != nil && !errors.Is(f.r.err, io.EOF) {
				return frame{}, f.r.err // the connection failed mid-message
			}
			return frame{}, errors.Join(errBadFrame, errors.New("the body ended inside a message"))
		case errors.As(err, &ce), errors.As(err, &le):
			return frame{}, errors.Join(errBadFrame, err)
		case f.r.err != nil && !errors.Is(f.r.err, io.EOF):
			return frame{}, f.r.err
		}
		return frame{}, errors.Join(errBadFrame, err)
	}
	if cap(m.Payload) <= 1<<20 {
		f.buf = m.Payload[:0] // keep a grown buffer for the next message, up to a bound
	}
	fr := frame{payload: m.Payload}
	switch headerString(m.Headers, eventstreamapi.MessageTypeHeader) {
	case eventstreamapi.EventMessageType:
		fr.kind, fr.name = frameEvent, headerString(m.Headers, eventstreamapi.EventTypeHeader)
	case eventstreamapi.ExceptionMessageType:
		fr.kind, fr.name = frameException, headerString(m.Headers, eventstreamapi.ExceptionTypeHeader)
	case eventstreamapi.ErrorMessageType:
		fr.kind = frameError
		fr.name = headerString(m.Headers, eventstreamapi.ErrorCodeHeader)
		fr.message = headerString(m.Headers, eventstreamapi.ErrorMessageHeader)
	default:
		return frame{}, errors.Join(errBadFrame, errors.New("a message without a known :message-type"))
	}
	return fr, nil
}

// headerString is a string header's value, or "" when it is absent or of another type.
func headerString(h eventstream.Headers, name string) string {
	if v, ok := h.Get(name).(eventstream.StringValue); ok {
		return string(v)
	}
	return ""
}

// countingReader counts the bytes one decode consumed, to tell a body that ended between two
// messages from one cut inside a message, and keeps the body's own error.
type countingReader struct {
	r   io.Reader
	n   int
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if err != nil {
		c.err = err
	}
	return n, err
}
