package gateway

import (
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsoncheck"
)

// This file holds the one check every request body passes before the gateway reads a field of
// it (internal/jsoncheck: JSON syntax, a maximum nesting depth, valid UTF-8, no duplicate names,
// in linear time and constant stack), the answer to a body that fails it, and the stripping of
// the fields no upstream may see.

// The check's vocabulary, as the gateway names it.
type (
	bodyErrorKind = jsoncheck.Kind
	bodyError     = jsoncheck.Error
)

const (
	bodySyntax    = jsoncheck.Syntax
	bodyTooDeep   = jsoncheck.TooDeep
	bodyBadUTF8   = jsoncheck.BadUTF8
	bodyDuplicate = jsoncheck.Duplicate
)

// bodyFacts is what the scan noticed on its way, so later steps can skip work.
type bodyFacts struct {
	// strip: a name to strip (see stripFields) stands at the top level or directly inside a
	// top-level "extra_body" object.
	strip bool
}

// bodyChecker checks bodies. Its fields are read-only after construction; it is safe for
// concurrent use.
type bodyChecker struct {
	maxDepth int
	strip    []string // names removed before forwarding; the scan notes whether any is present
}

// check validates b. It returns a *bodyError for a body that fails.
func (c *bodyChecker) check(b []byte) (bodyFacts, error) {
	jc := jsoncheck.Checker{MaxDepth: c.maxDepth, Watch: c.strip}
	facts, err := jc.Check(b)
	return bodyFacts{strip: facts.Watched}, err
}

// apiError is the answer to a body that failed check.
func (c *bodyChecker) apiError(err error) *Error {
	var be *bodyError
	if !errors.As(err, &be) {
		return errNotObject
	}
	switch be.Kind {
	case bodyTooDeep:
		return newError(http.StatusBadRequest, api.TypeInvalidRequest, "json_too_deep", "",
			"The JSON body of your request is nested more than "+strconv.Itoa(c.maxDepth)+" levels deep.")
	case bodyBadUTF8:
		return newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_utf8", "",
			"The JSON body of your request is not valid UTF-8 (byte "+strconv.Itoa(be.Offset)+").")
	case bodyDuplicate:
		return newError(http.StatusBadRequest, api.TypeInvalidRequest, "duplicate_key", be.Path,
			"The JSON body of your request has the name `"+be.Path+"` more than once.")
	}
	return newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_json", "",
		"We could not parse the JSON body of your request (byte "+strconv.Itoa(be.Offset)+").")
}

// stripFields rebuilds body without the strip list's names at its top level and in its top-level
// "extra_body" object, in one pass (members kept as they were written, whitespace between them
// dropped). It runs only when check found such a name, on a body check has passed: the nesting
// gjson walks is bounded.
func (c *bodyChecker) stripFields(body []byte) []byte {
	return c.stripObject(make([]byte, 0, len(body)), gjson.ParseBytes(body), true)
}

func (c *bodyChecker) stripObject(out []byte, obj gjson.Result, top bool) []byte {
	out = append(out, '{')
	first := true
	obj.ForEach(func(k, v gjson.Result) bool {
		if slices.Contains(c.strip, k.Str) {
			return true
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(append(out, k.Raw...), ':')
		if top && k.Str == "extra_body" && v.IsObject() {
			out = c.stripObject(out, v, false)
		} else {
			out = append(out, v.Raw...)
		}
		return true
	})
	return append(out, '}')
}
