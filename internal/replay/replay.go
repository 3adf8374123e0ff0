// Package replay keeps answers the gateway may send again without calling an upstream: the
// response cache (an exact-match cache of whole and streamed answers, opt-in per model, key or
// tenant) and idempotency records (a client's Idempotency-Key, per API key). Both live in Redis
// when the gateway has one, shared by every replica, and in a bounded in-process store
// otherwise.
//
// Every key names its tenant, as a Redis Cluster hash tag ({t:<tenant>}, the quota's tag): no
// answer is ever shared across tenants, and a request's keys all live in one slot.
//
// An Entry is stored as a compact binary encoding (encode/decode): the answer's status, content
// type, the parts written to the client (one per SSE event for a stream, so a replay sends the
// same events), the usage the answer held and the request id of the record that produced it.
package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"time"
)

// Store holds byte values with a time to live. The Redis and the memory store implement it;
// Claim, Finish and Release make the one-writer discipline idempotency needs.
type Store interface {
	// Get returns the value of key, or nil when there is none (or it expired).
	Get(ctx context.Context, key string) ([]byte, error)
	// Put sets key to val for ttl.
	Put(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Claim sets key to val for ttl unless it is set; it returns the value already there, or
	// nil when the claim was made.
	Claim(ctx context.Context, key string, val []byte, ttl time.Duration) ([]byte, error)
	// Finish replaces the value of key with val for ttl, if key still holds claim.
	Finish(ctx context.Context, key string, claim, val []byte, ttl time.Duration) error
	// Release deletes key, if it still holds claim.
	Release(ctx context.Context, key string, claim []byte) error
}

// Entry is a stored answer.
type Entry struct {
	// Status and ContentType are the answer's.
	Status      int
	ContentType string
	// Stream marks an SSE answer: Parts are its writes as they reached the client, one event
	// each. A whole answer has one part.
	Stream bool
	Parts  [][]byte
	// The usage the answer held, as the gateway recorded it.
	Prompt, Completion, Cached, Reasoning int64
	// RequestID is the gateway's id of the request whose answer this is (its usage record).
	RequestID string
	// Who produced the answer: the upstream model, provider and deployment of that record.
	UpstreamModel, Provider, Deployment string
}

// Size is the bytes the answer's parts hold.
func (e *Entry) Size() int {
	n := 0
	for _, p := range e.Parts {
		n += len(p)
	}
	return n
}

// entryVersion leads every encoded entry, so that a later layout can tell old entries apart.
const entryVersion = 1

// errCorrupt is a stored value that does not decode.
var errCorrupt = errors.New("replay: stored entry does not decode")

func (e *Entry) encode() []byte {
	b := make([]byte, 0, e.Size()+64+len(e.ContentType)+len(e.RequestID)+len(e.UpstreamModel)+len(e.Provider)+len(e.Deployment))
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, uint64(e.Status))
	stream := uint64(0)
	if e.Stream {
		stream = 1
	}
	b = binary.AppendUvarint(b, stream)
	for _, n := range [...]int64{e.Prompt, e.Completion, e.Cached, e.Reasoning} {
		b = binary.AppendVarint(b, n)
	}
	for _, s := range [...]string{e.ContentType, e.RequestID, e.UpstreamModel, e.Provider, e.Deployment} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Parts)))
	for _, p := range e.Parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

func decodeEntry(b []byte) (*Entry, error) {
	if len(b) == 0 || b[0] != entryVersion {
		return nil, errCorrupt
	}
	d := decoder{b: b[1:]}
	e := &Entry{Status: int(d.uvarint()), Stream: d.uvarint() == 1}
	for _, n := range [...]*int64{&e.Prompt, &e.Completion, &e.Cached, &e.Reasoning} {
		*n = d.varint()
	}
	for _, s := range [...]*string{&e.ContentType, &e.RequestID, &e.UpstreamModel, &e.Provider, &e.Deployment} {
		*s = string(d.bytes())
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // every part takes at least a byte of length
		return nil, errCorrupt
	}
	e.Parts = make([][]byte, 0, n)
	for range n {
		e.Parts = append(e.Parts, d.bytes())
	}
	if d.bad || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return e, nil
}

// decoder reads an encoded entry; bad is set once a read runs past the end.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad, d.b = true, nil
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// tag is the Redis Cluster hash tag of a tenant: the quota limiter's, so that one request's keys
// share a slot.
func tag(tenant string) string { return "{t:" + tenant + "}" }
