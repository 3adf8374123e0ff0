package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/llmgate/llmgate/api"
)

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 1 << 20

// decode reads a JSON body strictly (unknown fields are errors naming the field) and answers 400
// itself when it cannot.
func decode(c *gin.Context, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	msg := "The body must be one JSON object: " + err.Error()
	param := ""
	switch {
	case errors.As(err, &mbe):
		fail(c, http.StatusRequestEntityTooLarge, api.TypeInvalidRequest, "request_too_large", "", "The request body is too large.")
		return false
	case errors.As(err, &ute):
		param = ute.Field
		msg = ute.Field + ": must be " + ute.Type.String() + ", got " + ute.Value + "."
	case errors.Is(err, io.EOF):
		msg = "The request body is empty; send a JSON object."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		param = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		msg = "Unknown field " + strconv.Quote(param) + "."
	}
	fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_body", param, msg)
	return false
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
