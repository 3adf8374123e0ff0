package admin_test

import (
	"net/http"
	"testing"
)

// TestPutPriceUnits: PUT /admin/pricing/{model} takes the prices beyond tokens (per image by
// "quality/size", "size" or "default", per second of audio, per 1M characters, per request),
// stores them exactly, shows them in GET, and names the field of a bad one. A body of token
// prices alone still works as before.
func TestPutPriceUnits(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		r := c.Must(http.StatusOK, http.MethodPut, "/admin/pricing/dall-e-3",
			`{"image":{"1024x1024":"0.04","hd/1024x1024":0.08},"per_request":"0.000001"}`)
		if r.JSON("image.1024x1024").String() != "0.04" || r.JSON("image.hd/1024x1024").String() != "0.08" ||
			r.JSON("per_request").String() != "0.000001" || r.JSON("input_per_million").String() != "0" {
			t.Errorf("PUT dall-e-3: %s", r.Body)
		}
		r = c.Must(http.StatusOK, http.MethodPut, "/admin/pricing/whisper-1", `{"audio_per_second":0.0001}`)
		if r.JSON("audio_per_second").String() != "0.0001" {
			t.Errorf("PUT whisper-1: %s", r.Body)
		}
		c.Must(http.StatusOK, http.MethodPut, "/admin/pricing/tts-1", `{"characters_per_million":"15"}`)
		// The token fields alone, as before.
		c.Must(http.StatusOK, http.MethodPut, "/admin/pricing/chat-model", `{"input_per_million":"1.50","output_per_million":2}`)
		r = c.Must(http.StatusOK, http.MethodGet, "/admin/pricing/dall-e-3", nil)
		if r.JSON("data.0.image.hd/1024x1024").String() != "0.08" {
			t.Errorf("GET dall-e-3: %s", r.Body)
		}
		r = c.Must(http.StatusOK, http.MethodGet, "/admin/pricing/tts-1", nil)
		if r.JSON("data.0.characters_per_million").String() != "15" || r.JSON("data.0.audio_per_second").String() != "0" {
			t.Errorf("GET tts-1: %s", r.Body)
		}
		for _, bad := range []struct{ body, param string }{
			{`{"image":{"HD 1024":"0.04"}}`, "image"},
			{`{"image":{"1024x1024":"-1"}}`, "image.1024x1024"},
			{`{"image":{"1024x1024":"0.0000001"}}`, "image.1024x1024"},
			{`{"image":{}}`, "image"},
			{`{"audio_per_second":"x"}`, "audio_per_second"},
			{`{"characters_per_million":-3}`, "characters_per_million"},
			{`{"per_request":"1e3"}`, "per_request"},
			{`{"input_per_million":"1","per_request":"1"}`, "output_per_million"},
			{`{}`, "input_per_million"},
		} {
			c.Refused(http.StatusBadRequest, bad.param, http.MethodPut, "/admin/pricing/bad-model", bad.body)
		}
		if r := c.Do(http.MethodGet, "/admin/pricing/bad-model", nil); r.Status != http.StatusNotFound {
			t.Errorf("a refused PUT stored a price: %d %s", r.Status, r.Body)
		}
	})
}

// TestPutPriceCacheWrite: PUT /admin/pricing/{model} takes a price for prompt tokens written to
// the provider's cache, stores it with the version (GET and the history show it), defaults to 0
// (the input price) when absent, and names the field of a bad one.
func TestPutPriceCacheWrite(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		r := c.Must(http.StatusOK, http.MethodPut, "/admin/pricing/claude-sonnet-4-6",
			`{"input_per_million":"3","output_per_million":"15","cached_input_per_million":"0.30","cache_write_per_million":"3.75"}`)
		if r.JSON("cache_write_per_million").String() != "3.75" {
			t.Errorf("PUT: %s", r.Body)
		}
		c.Must(http.StatusOK, http.MethodPut, "/admin/pricing/claude-sonnet-4-6", `{"input_per_million":"3","output_per_million":"15"}`)
		r = c.Must(http.StatusOK, http.MethodGet, "/admin/pricing/claude-sonnet-4-6", nil)
		if r.JSON("data.0.cache_write_per_million").String() != "0" || r.JSON("data.1.cache_write_per_million").String() != "3.75" {
			t.Errorf("price history: %s", r.Body)
		}
		for _, bad := range []string{`"-1"`, `"abc"`, `"0.0000001"`} {
			c.Refused(http.StatusBadRequest, "cache_write_per_million", http.MethodPut, "/admin/pricing/bad-model",
				`{"input_per_million":"1","output_per_million":"1","cache_write_per_million":`+bad+`}`)
		}
	})
}
