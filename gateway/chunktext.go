package gateway

import (
	"bytes"
	"unsafe"

	"github.com/tidwall/gjson"
)

// chunkText reads a stream chunk's answer text for addChunk without gjson, for chunks of the usual
// shape: a top-level object whose first "choices" is an array, keys without escapes (a kept string
// with escapes is unescaped by gjson's own code, chunkField.appendTo). It keeps what gjson's
// reading keeps (FuzzChunkText holds the two to the same answer on every valid JSON input). On
// anything else it reports false, having kept nothing, and addChunk reads the chunk with gjson.
// Like gjson it stops at the first choice: the rest of the chunk is not read, nor checked.
//
// It runs for every event of every stream: gjson's generic walk (a path parsed per call, a Result
// per key and value) took 623 ns of a typical 215-byte chunk, this 262 ns (BenchmarkDeliveredChunk).
// Each object's key loop is spelled out where it is used: one loop taking the handling of a key
// as a function (not inlined, a call per key) took 310 ns.
func chunkText(b []byte) (f chunkFields, ok bool) {
	s := scan{b: b}
	if !s.open('{') {
		return f, false
	}
	for first := true; ; first = false {
		key, more, ok := s.nextKey(first)
		if !ok {
			return f, false
		}
		if !more {
			return f, true // no choices
		}
		if string(key) == "choices" {
			return f, s.choices(&f)
		}
		if !s.skipValue() {
			return f, false
		}
	}
}

// chunkFields are the kept values, in the order addChunk appends them: content,
// reasoning_content, reasoning, text, the first tool call's arguments. A field is set by the first
// occurrence of its key (for the arguments, the first tool_calls that has them), whatever its
// value; only a string value is kept.
type chunkFields [5]chunkField

type chunkField struct {
	set bool
	// esc: str is a string with escapes, quotes included, for gjson to unescape (appendTo).
	esc bool
	str []byte // the string's bytes when it has no escapes; nil when the value is not a string
}

// appendTo appends the field's string, unescaped, to buf; nothing when it is no string or empty.
// A string with escapes (quoted, in f.str) is unescaped by gjson.
func (f *chunkField) appendTo(buf *bytes.Buffer) {
	switch {
	case f.esc:
		buf.WriteString(gjson.Parse(unsafe.String(unsafe.SliceData(f.str), len(f.str))).Str)
	case len(f.str) > 0:
		buf.Write(f.str)
	}
}

// scan walks JSON bytes.
type scan struct {
	b []byte
	i int
}

func (s *scan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// open skips whitespace and the opening byte c.
func (s *scan) open(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// nextKey reads the next key of an object and its colon: after the opening brace (first) or
// after a value. more is false at the object's end; ok is false on anything unexpected, and on a
// key with an escape (which could spell any name).
func (s *scan) nextKey(first bool) (key []byte, more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, false, false
	}
	switch c := s.b[s.i]; {
	case c == '}':
		s.i++
		return nil, false, true
	case c == ',' && !first:
		s.i++
		s.ws()
	case first:
	default:
		return nil, false, false
	}
	key, ok = s.plainString()
	if !ok {
		return nil, false, false
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return nil, false, false
	}
	s.i++
	s.ws()
	return key, true, true
}

// plainString reads a string without escapes at s.i.
func (s *scan) plainString() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case '"':
			str := s.b[s.i+1 : j]
			s.i = j + 1
			return str, true
		case '\\':
			return nil, false
		}
	}
	return nil, false
}

// skipValue skips the value at s.i.
func (s *scan) skipValue() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		return s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if !s.skipString() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	}
	start := s.i // a number, true, false or null
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return s.i > start
		}
		s.i++
	}
	return false
}

func (s *scan) skipString() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case '"':
			s.i = j + 1
			return true
		case '\\':
			j++
		}
	}
	return false
}

// value reads a field's value: a string is kept (as it is, or quoted when it has escapes), another
// value skipped.
func (s *scan) value() (chunkField, bool) {
	if s.i < len(s.b) && s.b[s.i] == '"' {
		start := s.i
		if str, ok := s.plainString(); ok {
			return chunkField{set: true, str: str}, true
		}
		if !s.skipString() {
			return chunkField{}, false
		}
		return chunkField{set: true, esc: true, str: s.b[start:s.i]}, true
	}
	return chunkField{set: true}, s.skipValue()
}

// choices reads the first element of the choices array at s.i.
func (s *scan) choices(f *chunkFields) bool {
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return false // gjson reads "0" of an object as its key "0": left to it
	}
	s.i++
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.i < len(s.b) // no choice, or a first choice that is not an object: nothing
	}
	s.i++
	for first := true; ; first = false {
		key, more, ok := s.nextKey(first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		switch string(key) {
		case "text":
			if f[3].set {
				ok = s.skipValue()
			} else {
				f[3], ok = s.value()
			}
		case "delta":
			ok = s.delta(f)
		default:
			ok = s.skipValue()
		}
		if !ok {
			return false
		}
	}
}

// delta reads a choice's delta at s.i; a delta that is not an object keeps nothing.
func (s *scan) delta(f *chunkFields) bool {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skipValue()
	}
	s.i++
	for first := true; ; first = false {
		key, more, ok := s.nextKey(first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		switch i := deltaField(string(key)); {
		case i == 4 && !f[4].set:
			ok = s.toolArguments(&f[4])
		case i >= 0 && i < 4 && !f[i].set:
			f[i], ok = s.value()
		default:
			ok = s.skipValue()
		}
		if !ok {
			return false
		}
	}
}

// toolArguments reads tool_calls at s.i: the arguments of its first call's function set out
// when there are any (as gjson's "0.function.arguments": first keys, first element).
func (s *scan) toolArguments(out *chunkField) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '[':
	case '{':
		return false // gjson reads "0" of an object as its key "0": left to it
	default:
		return s.skipValue()
	}
	start := s.i
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '{' {
		s.i++
		if v, ok := s.firstKey("function"); !ok {
			return false
		} else if v {
			if s.i >= len(s.b) || s.b[s.i] != '{' {
				if s.i < len(s.b) && s.b[s.i] == '[' {
					return false // gjson would read "arguments" as an index: left to it
				}
			} else {
				s.i++
				found, ok := s.firstKey("arguments")
				if !ok {
					return false
				}
				if found {
					if *out, ok = s.value(); !ok {
						return false
					}
				}
			}
		}
	}
	s.i = start // the array again, whole
	return s.skipValue()
}

// firstKey moves to the value of the first key named name in the object whose brace was just
// read; found is false when the object has no such key (s.i is then past the object).
func (s *scan) firstKey(name string) (found, ok bool) {
	for first := true; ; first = false {
		key, more, ok := s.nextKey(first)
		if !ok || !more {
			return false, ok
		}
		if string(key) == name {
			return true, true
		}
		if !s.skipValue() {
			return false, false
		}
	}
}

// eventFields is what the relay reads of every Responses stream event (responsesFields): its
// sequence_number, when it is a number, and its delta, when it is a string.
type eventFields struct {
	seq    int64
	hasSeq bool
	delta  chunkField
}

// responsesFields reads a Responses stream event's sequence_number (and, with wantDelta, its delta)
// in one pass over its top-level keys, stopping when it has them, for the relay, which needs them
// of every event: two gjson lookups took 0.7 µs of a delta event here. Like gjson it takes the
// first occurrence of a key. It reports false on anything else than the usual shape (a key with
// an escape, a sequence_number that is not a plain integer), and
// the relay reads the event with gjson (FuzzResponsesFields holds the two to the same values).
func responsesFields(b []byte, wantDelta bool) (f eventFields, ok bool) {
	s := scan{b: b}
	if !s.open('{') {
		return f, false
	}
	seenSeq, seenDelta := false, !wantDelta
	for first := true; ; first = false {
		key, more, ok := s.nextKey(first)
		if !ok || !more {
			return f, ok
		}
		switch {
		case !seenSeq && string(key) == "sequence_number":
			seenSeq = true
			if f.seq, f.hasSeq, ok = s.integer(); !ok {
				return f, false
			}
		case !seenDelta && string(key) == "delta":
			seenDelta = true
			if f.delta, ok = s.value(); !ok {
				return f, false
			}
		default:
			if !s.skipValue() {
				return f, false
			}
		}
		if seenSeq && seenDelta {
			return f, true
		}
	}
}

// integer reads the value at s.i as a plain integer of up to 18 digits (ok false for any other
// number, which gjson reads); a value that is no number is skipped, with isNum false.
func (s *scan) integer() (n int64, isNum, ok bool) {
	if s.i >= len(s.b) {
		return 0, false, false
	}
	if c := s.b[s.i]; c != '-' && (c < '0' || c > '9') {
		return 0, false, s.skipValue()
	}
	neg := s.b[s.i] == '-'
	if neg {
		s.i++
	}
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int64(s.b[s.i]-'0')
		s.i++
	}
	if d := s.i - start; d == 0 || d > 18 || s.i >= len(s.b) {
		return 0, false, false
	}
	switch s.b[s.i] {
	case ',', '}', ' ', '\t', '\n', '\r':
	default:
		return 0, false, false // a fraction or an exponent
	}
	if neg {
		n = -n
	}
	return n, true, true
}
