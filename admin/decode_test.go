package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestDecodeNamesTheField: every way a body can be wrong answers 400 (413 when too large) with
// the field at fault in "param", nested PATCH fields included.
func TestDecodeNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		body, param string
		status      int
	}{
		{`{"name":"a","expires_at":"tomorrow"}`, "expires_at", 400},
		{`{"name":5}`, "name", 400},
		{`{"limits":{"rpm":"x"}}`, "limits.rpm", 400},
		{`{"limits":{"rpn":1}}`, "limits.rpn", 400},
		{`{"nope":1}`, "nope", 400},
		{`{"name":"a"} {}`, "", 400},
		{`{"name":"a"}]`, "", 400},
		{``, "", 400},
		{`[1]`, "", 400},
		{`{"name":"` + strings.Repeat("x", maxAdminBody) + `"}`, "", 413},
	} {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		var b keyPatch
		if decode(c, &b) {
			t.Errorf("%.40s: accepted", tc.body)
			continue
		}
		var e struct {
			Error struct{ Param *string } `json:"error"`
		}
		if w.Code != tc.status || json.Unmarshal(w.Body.Bytes(), &e) != nil {
			t.Errorf("%.40s: status %d, body %.200s", tc.body, w.Code, w.Body.String())
			continue
		}
		got := ""
		if e.Error.Param != nil {
			got = *e.Error.Param
		}
		if got != tc.param {
			t.Errorf("%.40s: param %q, want %q (%s)", tc.body, got, tc.param, w.Body.String())
		}
	}
	var ok keyPatch
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"n","limits":null,"models":["m"]}`))
	if !decode(c, &ok) || *ok.Name != "n" || !ok.Limits.Set || ok.Limits.Val != nil || !ok.Models.Set || len(*ok.Models.Val) != 1 || ok.Metadata.Set {
		t.Fatalf("a good PATCH body decoded wrong: %+v, %s", ok, w.Body.String())
	}
}
