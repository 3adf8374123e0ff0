package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/llmgate/llmgate/api"
)

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 1 << 20

// decode reads a JSON body strictly (unknown fields are errors naming the field) and answers 400
// itself when it cannot, naming the field at fault in "param".
func decode(c *gin.Context, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxAdminBody))
	return decodeRead(c, raw, err, v)
}

// decodeOptional decodes a body that may be empty (in any transfer encoding): empty leaves v as is.
func decodeOptional(c *gin.Context, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxAdminBody))
	if err == nil && len(bytes.TrimSpace(raw)) == 0 {
		return true
	}
	return decodeRead(c, raw, err, v)
}

// decodeRead is decode once the body has been read (err: the read's).
func decodeRead(c *gin.Context, raw []byte, err error, v any) bool {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		fail(c, http.StatusRequestEntityTooLarge, api.TypeInvalidRequest, "request_too_large", "", "The request body is too large (at most 1 MiB).")
		return false
	}
	if err == nil {
		err = decodeStrict(raw, v)
	}
	if err == nil {
		return true
	}
	var ute *json.UnmarshalTypeError
	msg := "The body must be one JSON object: " + err.Error()
	param := ""
	switch {
	case len(bytes.TrimSpace(raw)) == 0:
		msg = "The request body is empty; send a JSON object."
	case errors.As(err, &ute):
		param = jsonPath(ute.Field)
		if top := failingField(raw, v); top != "" && top != param && !strings.HasPrefix(param, top+".") {
			param = strings.TrimSuffix(top+"."+param, ".") // the field inside a PATCH field
		}
		msg = param + ": must be " + ute.Type.String() + ", got " + ute.Value + "."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		param = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if top := failingField(raw, v); top != "" && top != param {
			param = top + "." + param
		}
		msg = "Unknown field " + strconv.Quote(param) + "."
	default:
		// An error of a field's own decoder (a malformed time, say) does not name the field:
		// find it by decoding the fields one at a time.
		if top := failingField(raw, v); top != "" {
			param = top
			msg = top + ": " + err.Error()
		}
	}
	fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_body", param, msg)
	return false
}

// jsonPath drops the names of embedded structs from a decoding error's field path: Go writes
// "ProviderSpec.bedrock.region" for the bedrock key of a body that embeds ProviderSpec, and the
// body's own keys are all lower case.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" && !unicode.IsUpper(rune(p[0])) {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ".")
}

func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// failingField returns the top-level field of a JSON object body that does not decode into a
// fresh value of v's type on its own, or "".
func failingField(raw []byte, v any) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return ""
	}
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer {
		return ""
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		one, _ := json.Marshal(map[string]json.RawMessage{name: fields[name]})
		if decodeStrict(one, reflect.New(t.Elem()).Interface()) != nil {
			return name
		}
	}
	return ""
}

// intParam reads an integer query parameter within [lo, hi], answering 400 itself when invalid.
func intParam(c *gin.Context, name string, def, lo, hi int) (int, bool) {
	s := c.Query(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", name,
			name+": must be an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi)+".")
		return 0, false
	}
	return n, true
}

func newID() string {
	u, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return u.String()
}
