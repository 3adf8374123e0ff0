package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
)

// wavFile is a PCM WAV of 16-bit mono samples at 8 kHz lasting seconds.
func wavFile(seconds int) []byte {
	data := make([]byte, seconds*16000)
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + len(data)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		le(v)
	}
	b.WriteString("data")
	le(uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

// TestAudioPricedAndCharged: with the binary on PostgreSQL and Redis, prices set by PUT
// /admin/pricing bill a WAV transcription answered as text per second of its audio and a speech
// request per character of its input; the prepaid balance is charged both, exactly; a chat-only
// deployment is a 400 that reaches no upstream and charges nothing.
func TestAudioPricedAndCharged(t *testing.T) {
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)), func(c *Config) {
		withMediaModels(c)
		c.Models = append(c.Models,
			providers.ModelConfig{Name: "whisper", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "whisper-1"}}},
			providers.ModelConfig{Name: "tts", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "tts-1"}}},
			providers.ModelConfig{Name: "ds-whisper", Deployments: []providers.DeploymentConfig{{Provider: "ds", Model: "whisper-1"}}})
	})
	for model, body := range map[string]string{"whisper-1": `{"audio_per_second":"0.001"}`, "tts-1": `{"characters_per_million":"15"}`} {
		if s := e.adminSend(http.MethodPut, "/admin/pricing/"+model, body, nil); s != 200 {
			t.Fatalf("PUT /admin/pricing/%s: %d", model, s)
		}
	}
	k := e.newKey(createKeyBody{Name: "listener", UserID: "listener", Tier: "open"})
	e.adminSend(http.MethodPost, "/admin/credits/user/listener/topup", `{"amount_usd":"1"}`, nil)
	send := func(path, contentType string, body []byte) (int, string, string) {
		req, _ := http.NewRequest(http.MethodPost, e.baseURL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+k.Key)
		req.Header.Set("Content-Type", contentType)
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("X-Request-Id")
	}
	form := func(model string) ([]byte, string) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		fw, _ := w.CreateFormFile("file", "speech.wav")
		_, _ = fw.Write(wavFile(5))
		_ = w.WriteField("model", model)
		_ = w.WriteField("response_format", "text")
		_ = w.Close()
		return b.Bytes(), w.FormDataContentType()
	}
	body, ct := form("whisper")
	status, answer, id := send("/audio/transcriptions", ct, body)
	if status != 200 || answer == "" || strings.HasPrefix(answer, "{") {
		t.Fatalf("HTTP %d: %s", status, answer)
	}
	r := e.usageFor(id)
	if r.Endpoint != "audio/transcriptions" || r.Units != 5 || r.Unit != billing.UnitSecond || r.CostPicoUSD == nil ||
		billing.FormatPico64(*r.CostPicoUSD) != "0.005" || !strings.HasPrefix(r.PriceVersion, "whisper-1@") {
		t.Fatalf("transcription record: %+v cost %v", r, r.CostPicoUSD)
	}
	status, answer, id = send("/audio/speech", "application/json", []byte(`{"model":"tts","input":"`+strings.Repeat("x", 2000)+`","voice":"alloy"}`))
	if status != 200 || len(answer) == 0 {
		t.Fatalf("speech: HTTP %d", status)
	}
	if r := e.usageFor(id); r.Units != 2000 || r.Unit != billing.UnitCharacter || r.CostPicoUSD == nil || billing.FormatPico64(*r.CostPicoUSD) != "0.03" {
		t.Fatalf("speech record: %+v cost %v", r, r.CostPicoUSD)
	}
	balance := func() string {
		var acct struct {
			Balance string `json:"balance_usd"`
		}
		e.adminSend(http.MethodGet, "/admin/credits/user/listener", "", &acct)
		return acct.Balance
	}
	waitFor(t, 10*time.Second, "the charges of 0.005 and 0.03", func() bool { return balance() == "0.965" })

	upBefore := e.up.Stats().Requests
	body, ct = form("ds-whisper")
	status, answer, _ = send("/audio/transcriptions", ct, body)
	if status != http.StatusBadRequest || gjson.Get(answer, "error.code").String() != "unsupported_endpoint" {
		t.Errorf("chat-only deployment: HTTP %d %s", status, answer)
	}
	if n := e.up.Stats().Requests - upBefore; n != 0 {
		t.Errorf("%d upstream calls for the refused request", n)
	}
	if b := balance(); b != "0.965" {
		t.Errorf("balance %s after the refusal, want 0.965", b)
	}
}
