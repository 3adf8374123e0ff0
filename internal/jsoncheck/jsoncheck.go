// Package jsoncheck is the one check of JSON that arrives from outside before anything reads a
// field of it: JSON syntax (RFC 8259), a maximum nesting depth, valid UTF-8 everywhere, and no
// duplicate names in any object (the last two can be relaxed for upstream answers). It is a
// single forward pass in linear time whose stack use does not grow with the input: nesting is
// tracked in a fixed array of MaxDepth levels instead of by recursion, so a document of millions
// of '[' is refused at the first level past the cap. The gateway checks request bodies with it;
// the translating adapters check upstream answers with Valid, in place of gjson.Valid, which
// recurses once per level.
//
// Duplicate names matter because readers disagree about them: gjson (which the gateway, the token
// estimator and the adapters read fields with) takes the first, while Python's json, Go's
// encoding/json and JavaScript's JSON.parse take the last. A body with two "model" names would be
// admitted, allowed and priced as one model and served as the other. Rejecting duplicates in
// every object, rather than only in the objects read today, keeps that true for any field a
// later reader picks.
package jsoncheck

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Kind says why a document failed the check.
type Kind uint8

// The kinds of Error.
const (
	Syntax    Kind = iota + 1 // not JSON
	TooDeep                   // nesting beyond the cap
	BadUTF8                   // a byte sequence that is not UTF-8
	Duplicate                 // a name twice in one object
)

// Error is a failed check: what, where (a byte offset), and for a duplicate the path of the
// repeated name (e.g. "model", "messages[0].content").
type Error struct {
	Kind   Kind
	Offset int
	Path   string
}

func (e *Error) Error() string {
	switch e.Kind {
	case TooDeep:
		return "JSON nested too deeply at byte " + strconv.Itoa(e.Offset)
	case BadUTF8:
		return "invalid UTF-8 at byte " + strconv.Itoa(e.Offset)
	case Duplicate:
		return "duplicate name " + strconv.Quote(e.Path)
	}
	return "invalid JSON at byte " + strconv.Itoa(e.Offset)
}

// Facts is what the scan noticed on its way, so later steps can skip work.
type Facts struct {
	// Watched: a name of Checker.Watch stands at the top level or directly inside a top-level
	// "extra_body" object.
	Watched bool
}

// Checker checks documents. It is a value without state (the scan state is pooled); safe for
// concurrent use.
type Checker struct {
	// MaxDepth caps the nesting of objects and arrays; a document nested deeper is a TooDeep
	// error at the first level past it. It must be positive.
	MaxDepth int
	// Watch lists names the scan looks for at the top level and inside a top-level "extra_body"
	// object (the fields the gateway strips from request bodies), reported in Facts.
	Watch []string
	// AllowDuplicates accepts objects with a name twice (an upstream's answer, where no reader of
	// ours is at stake); by default they are a Duplicate error.
	AllowDuplicates bool
	// AllowBadUTF8 accepts strings that are not UTF-8, as gjson.Valid does (an upstream's
	// answer); by default they are a BadUTF8 error.
	AllowBadUTF8 bool
}

// level is one open object or array.
type level struct {
	object bool
	keys   int // objects: index of this object's first name in scan.keys
	index  int // arrays: the element being read
	// name is the most recent name read in an object (for error paths and extra_body).
	name keySpan
}

// keySpan is a name: a slice of the body, or of scan.unescaped when it contained escapes.
type keySpan struct {
	start, end int
	escaped    bool
}

// scan is one run of the check.
type scan struct {
	b         []byte
	keys      []keySpan // the names of every open object, innermost last
	unescaped []byte    // the decoded form of names that contained escapes
	levels    []level
	// The checker's relaxations, copied: a pooled scan keeps no pointer to its checker, which
	// may then live on its caller's stack.
	allowDuplicates, allowBadUTF8 bool
}

// linearLimit is how many names an object holds before duplicates are found by sorting at its
// end rather than by comparing each new name with the ones before it.
const linearLimit = 16

// scans recycles scan state: its slices are sized by the bodies seen, and a fresh set per request
// would cost more than the scan of a small body.
var scans = sync.Pool{New: func() any { return new(scan) }}

// Check validates b. It returns an *Error for a document that fails.
func (c *Checker) Check(b []byte) (Facts, error) {
	s := scans.Get().(*scan)
	s.b, s.allowDuplicates, s.allowBadUTF8 = b, c.AllowDuplicates, c.AllowBadUTF8
	if cap(s.levels) < c.MaxDepth {
		s.levels = make([]level, 0, c.MaxDepth)
	}
	facts, err := s.run(c)
	if cap(s.keys) > 1<<14 || cap(s.unescaped) > 1<<16 || cap(s.levels) > 1<<12 { // a hostile body's worth: let it go
		s.keys, s.unescaped, s.levels = nil, nil, nil
	}
	s.b, s.keys, s.unescaped, s.levels = nil, s.keys[:0], s.unescaped[:0], s.levels[:0]
	scans.Put(s)
	return facts, err
}

// MaxAnswerDepth is the nesting Valid allows: deeper than any answer a model writes (a tool
// call's arguments nest as the caller's schema does, and request bodies stop at the gateway's
// max_json_depth), and shallow enough that the readers that follow the check (gjson walks
// nested values recursively) stay cheap.
const MaxAnswerDepth = 512

var answers = Checker{MaxDepth: MaxAnswerDepth, AllowDuplicates: true, AllowBadUTF8: true}

// Valid reports whether b is one JSON value nested at most MaxAnswerDepth deep. It stands in for
// gjson.Valid on what arrives from outside (an upstream's answer, a string of JSON inside a
// request), accepting what it accepts but for the depth: gjson.Valid recurses once per level,
// so a document of a million '[' takes a million stack frames, and the process dies when its
// stack limit is reached; this check's stack does not grow with the input.
func Valid(b []byte) bool {
	_, err := answers.Check(b)
	return err == nil
}

// ValidString is Valid for a string.
func ValidString(s string) bool {
	return Valid(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func (s *scan) fail(kind Kind, at int) error {
	return &Error{Kind: kind, Offset: at}
}

func (s *scan) key(k keySpan) []byte {
	if k.escaped {
		return s.unescaped[k.start:k.end]
	}
	return s.b[k.start:k.end]
}

// run is the scan proper: a loop that reads one value per turn, then closes as many containers
// as end after it.
func (s *scan) run(c *Checker) (Facts, error) {
	var facts Facts
	b := s.b
	i := skipSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return facts, s.fail(Syntax, i)
		}
		switch ch := b[i]; {
		case ch == '{' || ch == '[':
			if len(s.levels) >= c.MaxDepth {
				return facts, s.fail(TooDeep, i)
			}
			s.levels = append(s.levels, level{object: ch == '{', keys: len(s.keys)})
			i = skipSpace(b, i+1)
			if i < len(b) && (b[i] == '}' && ch == '{' || b[i] == ']' && ch == '[') {
				s.levels = s.levels[:len(s.levels)-1]
				i++
				break
			}
			if ch == '{' {
				var err error
				if i, err = s.name(c, &facts, i); err != nil {
					return facts, err
				}
			}
			continue
		case ch == '"':
			end, _, err := s.str(i)
			if err != nil {
				return facts, err
			}
			i = end
		case ch == 't':
			if !bytes.HasPrefix(b[i:], litTrue) {
				return facts, s.fail(Syntax, i)
			}
			i += 4
		case ch == 'f':
			if !bytes.HasPrefix(b[i:], litFalse) {
				return facts, s.fail(Syntax, i)
			}
			i += 5
		case ch == 'n':
			if !bytes.HasPrefix(b[i:], litNull) {
				return facts, s.fail(Syntax, i)
			}
			i += 4
		case ch == '-' || ch >= '0' && ch <= '9':
			end, ok := number(b, i)
			if !ok {
				return facts, s.fail(Syntax, end)
			}
			i = end
		default:
			return facts, s.fail(Syntax, i)
		}
		// A value ended at i: close what ends here, then find where the next value starts.
		for {
			i = skipSpace(b, i)
			if len(s.levels) == 0 {
				if i != len(b) {
					return facts, s.fail(Syntax, i)
				}
				return facts, nil
			}
			if i >= len(b) {
				return facts, s.fail(Syntax, i)
			}
			top := &s.levels[len(s.levels)-1]
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if top.object {
					var err error
					if i, err = s.name(c, &facts, i); err != nil {
						return facts, err
					}
				} else {
					top.index++
				}
				break
			}
			if top.object && b[i] == '}' {
				if err := s.closeObject(top, i); err != nil {
					return facts, err
				}
			} else if top.object || b[i] != ']' {
				return facts, s.fail(Syntax, i)
			}
			s.levels = s.levels[:len(s.levels)-1]
			i++
		}
	}
}

// name reads `"name" :` at i, records the name in the innermost object and checks it against the
// names before it (all of them, for objects up to linearLimit names; the rest at closeObject).
func (s *scan) name(c *Checker, facts *Facts, i int) (int, error) {
	if i >= len(s.b) || s.b[i] != '"' {
		return i, s.fail(Syntax, i)
	}
	end, escaped, err := s.str(i)
	if err != nil {
		return i, err
	}
	k := keySpan{start: i + 1, end: end - 1}
	if escaped {
		k = s.unescape(i, end)
	}
	top := &s.levels[len(s.levels)-1]
	name := s.key(k)
	if n := len(s.keys) - top.keys; n < linearLimit && !c.AllowDuplicates {
		for _, prev := range s.keys[top.keys:] {
			if bytes.Equal(s.key(prev), name) {
				top.name = k
				return i, &Error{Kind: Duplicate, Offset: i, Path: s.path()}
			}
		}
	}
	if !c.AllowDuplicates { // kept for the duplicate check at closeObject
		s.keys = append(s.keys, k)
	}
	top.name = k
	if len(c.Watch) > 0 && !facts.Watched {
		switch len(s.levels) {
		case 1:
			facts.Watched = containsName(c.Watch, name)
		case 2:
			facts.Watched = string(s.key(s.levels[0].name)) == "extra_body" && containsName(c.Watch, name)
		}
	}
	i = skipSpace(s.b, end)
	if i >= len(s.b) || s.b[i] != ':' {
		return i, s.fail(Syntax, i)
	}
	return skipSpace(s.b, i+1), nil
}

// closeObject finishes the innermost object: a wide one is checked for duplicates by sorting its
// names (linear comparison would be quadratic), then its names are dropped.
func (s *scan) closeObject(top *level, at int) error {
	names := s.keys[top.keys:]
	if len(names) > linearLimit && !s.allowDuplicates {
		slices.SortFunc(names, func(a, b keySpan) int { return bytes.Compare(s.key(a), s.key(b)) })
		for j := 1; j < len(names); j++ {
			if bytes.Equal(s.key(names[j-1]), s.key(names[j])) {
				top.name = names[j]
				return &Error{Kind: Duplicate, Offset: at, Path: s.path()}
			}
		}
	}
	s.keys = s.keys[:top.keys]
	return nil
}

// path names the current position for an error's param: names joined by dots, array indices in
// brackets.
func (s *scan) path() string {
	var sb strings.Builder
	for j, l := range s.levels {
		if l.object {
			if j > 0 {
				sb.WriteByte('.')
			}
			sb.Write(s.key(l.name))
		} else if j+1 < len(s.levels) {
			sb.WriteString("[" + strconv.Itoa(l.index) + "]")
		}
	}
	return sb.String()
}

// str scans the string starting with the quote at i: it returns the offset after the closing
// quote and whether the string holds escapes.
func (s *scan) str(i int) (int, bool, error) {
	b := s.b
	escaped := false
	i++
	for {
		// The common bytes first: printable ASCII other than '"' and '\'.
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, escaped, s.fail(Syntax, i)
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, s.fail(Syntax, i)
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, escaped, s.fail(Syntax, i)
				}
				i += 6
			default:
				return i, escaped, s.fail(Syntax, i)
			}
		case c < 0x20:
			return i, escaped, s.fail(Syntax, i)
		default: // the first byte of a multi-byte sequence, or not UTF-8 at all
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 && !s.allowBadUTF8 {
				return i, escaped, s.fail(BadUTF8, i)
			}
			i += size
		}
	}
}

// unescape decodes the name whose quotes are at start and end-1 into s.unescaped. The string is
// known to be well formed. An unpaired surrogate escape decodes to U+FFFD, as gjson and
// encoding/json decode it.
func (s *scan) unescape(start, end int) keySpan {
	b := s.b[start+1 : end-1]
	k := keySpan{start: len(s.unescaped), escaped: true}
	for i := 0; i < len(b); {
		if b[i] != '\\' {
			s.unescaped = append(s.unescaped, b[i])
			i++
			continue
		}
		switch b[i+1] {
		case 'b':
			s.unescaped = append(s.unescaped, '\b')
		case 'f':
			s.unescaped = append(s.unescaped, '\f')
		case 'n':
			s.unescaped = append(s.unescaped, '\n')
		case 'r':
			s.unescaped = append(s.unescaped, '\r')
		case 't':
			s.unescaped = append(s.unescaped, '\t')
		case 'u':
			r := rune(hex4(b[i+2:]))
			i += 6
			if r >= 0xD800 && r < 0xDC00 && i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
				if lo := rune(hex4(b[i+2:])); lo >= 0xDC00 && lo < 0xE000 {
					r = (r-0xD800)<<10 + (lo - 0xDC00) + 0x10000
					i += 6
				}
			}
			s.unescaped = utf8.AppendRune(s.unescaped, r) // a lone surrogate becomes U+FFFD
			continue
		default: // '"', '\\', '/'
			s.unescaped = append(s.unescaped, b[i+1])
		}
		i += 2
	}
	k.end = len(s.unescaped)
	return k
}

var (
	litTrue  = []byte("true")
	litFalse = []byte("false")
	litNull  = []byte("null")
)

// plain marks the string bytes that need no attention: printable ASCII other than '"' and '\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func containsName(list []string, name []byte) bool {
	for _, n := range list {
		if string(name) == n {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at i.
func number(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hex4(b []byte) int {
	n := 0
	for _, c := range b[:4] {
		n <<= 4
		switch {
		case c >= '0' && c <= '9':
			n |= int(c - '0')
		case c >= 'a' && c <= 'f':
			n |= int(c-'a') + 10
		default:
			n |= int(c-'A') + 10
		}
	}
	return n
}
