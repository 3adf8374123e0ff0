package gateway

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestReadBodyKeepsNoSlack: the body read is kept for the whole request (counted when the answer
// reports no usage), so a body of known length is read into a buffer of that length, not one
// grown past it.
func TestReadBodyKeepsNoSlack(t *testing.T) {
	for _, size := range []int{2, 190, 600, 5000, 100 << 10} {
		want := []byte(`{"m":"` + strings.Repeat("x", size) + `"}`)
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(want))
		x := &exchange{c: c, g: &Gateway{opts: Options{MaxBodyBytes: 1 << 20}}, ctx: context.Background()}
		got, err := x.readBody()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d bytes, %v", len(want), len(got), err)
		}
		if cap(got) > len(want)+1 {
			t.Errorf("%d bytes: kept in a buffer of %d", len(want), cap(got))
		}
	}
}
