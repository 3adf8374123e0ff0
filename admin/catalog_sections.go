package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/bedrock"
	"github.com/llmgate/llmgate/providers/vertex"
	"github.com/llmgate/llmgate/store"
)

// A provider type's own settings (the config file's providers[].anthropic, providers[].bedrock
// …) travel in the API as a section of the same name and the same keys. What differs between
// types is only the section's Go type and which of its fields are secrets; everything else is
// shared here: a section is accepted only for its type, its secret values are sealed with the
// secret key like api_key (each bound to the provider and the field), kept out of the stored
// spec, shown only as fingerprints ("secret_fingerprints": {"bedrock.secret_access_key": …}),
// merged field by field by PATCH (RFC 7396: named keys replace, null clears, the rest is kept,
// secrets included), and sealed again by /admin/secrets/reencrypt.
//
// A type that gets a section adds a field to ProviderSpec and to providerPatch, and a row to
// typeSections.

// secretField is one secret value of a section: its name inside the section, and where it is.
type secretField struct {
	name string
	val  *string
}

// typeSection is one provider type's section, made by sectionOf.
type typeSection struct {
	// name is the section's key in the body and the provider type that takes it.
	name string
	// present reports whether the spec has the section.
	present func(*ProviderSpec) bool
	// own gives the spec a copy of its section, so that blanking secrets in it leaves the
	// original alone.
	own func(*ProviderSpec)
	// merge applies a PATCH of the section (null removes it) and decodes the result strictly.
	merge func(s *ProviderSpec, patch json.RawMessage) error
	// secrets are the section's secret values, each named "section.field".
	secrets func(*ProviderSpec) []secretField
	// secretNames are the names of the secret fields inside the section.
	secretNames []string
	// patched is the section's field of a PATCH body.
	patched func(*providerPatch) optional[json.RawMessage]
}

// typeSections are the provider types that have a section.
var typeSections = []typeSection{
	sectionOf("anthropic", func(s *ProviderSpec) **anthropic.Settings { return &s.Anthropic },
		func(p *providerPatch) optional[json.RawMessage] { return p.Anthropic }, nil),
	sectionOf("bedrock", func(s *ProviderSpec) **bedrock.Settings { return &s.Bedrock },
		func(p *providerPatch) optional[json.RawMessage] { return p.Bedrock },
		func(b *bedrock.Settings) []secretField {
			return []secretField{{"secret_access_key", &b.SecretAccessKey}, {"session_token", &b.SessionToken}}
		}),
	sectionOf("vertex", func(s *ProviderSpec) **vertex.Settings { return &s.Vertex },
		func(p *providerPatch) optional[json.RawMessage] { return p.Vertex },
		func(v *vertex.Settings) []secretField { return []secretField{{"credentials_json", &v.CredentialsJSON}} }),
}

// sectionOf describes the section name of type T, found in a spec by field and in a PATCH by
// patched, whose secret values secretsOf points at (nil: none).
func sectionOf[T any](name string, field func(*ProviderSpec) **T, patched func(*providerPatch) optional[json.RawMessage],
	secretsOf func(*T) []secretField) typeSection {
	var names []string
	if secretsOf != nil {
		for _, f := range secretsOf(new(T)) {
			names = append(names, f.name)
		}
	}
	return typeSection{
		secretNames: names,
		name:        name,
		present:     func(s *ProviderSpec) bool { return *field(s) != nil },
		own: func(s *ProviderSpec) {
			if p := field(s); *p != nil {
				c := **p
				*p = &c
			}
		},
		merge: func(s *ProviderSpec, patch json.RawMessage) error {
			p := field(s)
			if bytes.Equal(bytes.TrimSpace(patch), []byte("null")) {
				*p = nil
				return nil
			}
			base := []byte("{}")
			if *p != nil {
				var err error
				if base, err = json.Marshal(*p); err != nil {
					return err
				}
			}
			merged, err := mergePatch(base, patch)
			if err != nil {
				return err
			}
			var v T
			if err := decodeStrict(merged, &v); err != nil {
				return err
			}
			*p = &v
			return nil
		},
		secrets: func(s *ProviderSpec) []secretField {
			p := *field(s)
			if p == nil || secretsOf == nil {
				return nil
			}
			out := secretsOf(p)
			for i := range out {
				out[i].name = name + "." + out[i].name
			}
			return out
		},
		patched: patched,
	}
}

// mergePatch applies an RFC 7396 JSON merge patch to the JSON object doc: a patch that is an
// object is merged key by key (null removes the key, objects merge, anything else replaces); any
// other patch replaces doc.
func mergePatch(doc, patch []byte) ([]byte, error) {
	var p map[string]json.RawMessage
	if json.Unmarshal(patch, &p) != nil || p == nil {
		return patch, nil
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(doc, &d) != nil || d == nil {
		d = map[string]json.RawMessage{}
	}
	for k, v := range p {
		switch {
		case bytes.Equal(bytes.TrimSpace(v), []byte("null")):
			delete(d, k)
		default:
			m, err := mergePatch(d[k], v)
			if err != nil {
				return nil, err
			}
			d[k] = m
		}
	}
	return json.Marshal(d)
}

// mergeSection applies a PATCH of a section to spec, answering a 400 naming the field when the
// result does not decode.
func mergeSection(c *gin.Context, ts typeSection, spec *ProviderSpec, patch json.RawMessage) bool {
	err := ts.merge(spec, patch)
	if err == nil {
		return true
	}
	var ute *json.UnmarshalTypeError
	param, msg := ts.name, ts.name+": "+err.Error()
	switch {
	case errors.As(err, &ute):
		param = strings.TrimSuffix(ts.name+"."+ute.Field, ".")
		msg = param + ": must be " + ute.Type.String() + ", got " + ute.Value + "."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		param = ts.name + "." + strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		msg = "Unknown field " + strconv.Quote(param) + "."
	}
	fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_body", param, msg)
	return false
}

// secretFields lists every section secret of the spec, set or not.
func (s *ProviderSpec) secretFields() []secretField {
	var out []secretField
	for _, ts := range typeSections {
		out = append(out, ts.secrets(s)...)
	}
	return out
}

// redacted returns a copy of the spec without the sections' secret values and their
// fingerprints by field (nil when none is set).
func (s ProviderSpec) redacted() (ProviderSpec, map[string]string) {
	for _, ts := range typeSections {
		ts.own(&s)
	}
	var fps map[string]string
	for _, f := range s.secretFields() {
		if *f.val == "" {
			continue
		}
		if fps == nil {
			fps = map[string]string{}
		}
		fps[f.name], *f.val = secrets.Fingerprint(*f.val), ""
	}
	return s, fps
}

// sectionContext binds a section's sealed secret to the provider and the field: a sealed value
// copied to another provider or another field does not open.
func sectionContext(provider, field string) string { return SecretContext(provider) + "|" + field }

// OpenProvider reads a stored provider entry with its secrets opened by keys: the settings with
// the sections' secret values in place, and the api_key. A secret that does not open is an error
// naming its field, never the value.
func OpenProvider(e store.CatalogEntry, keys *secrets.Keyring) (ProviderSpec, string, error) {
	spec, key, unreadable, err := openProvider(e, keys)
	if err == nil && len(unreadable) > 0 {
		err = fmt.Errorf("%s: the stored secret does not open with the configured secret keys", strings.Join(unreadable, ", "))
	}
	return spec, key, err
}

// openProvider is OpenProvider that leaves the secrets that do not open blank and names them.
func openProvider(e store.CatalogEntry, keys *secrets.Keyring) (spec ProviderSpec, key string, unreadable []string, err error) {
	var sp storedProvider
	if err := json.Unmarshal(e.Spec, &sp); err != nil {
		return spec, "", nil, err
	}
	spec = sp.ProviderSpec
	if e.Secret != "" {
		if key, err = keys.Open(e.Secret, SecretContext(e.Name)); err != nil {
			unreadable, key = append(unreadable, "api_key"), ""
		}
	}
	for _, f := range spec.secretFields() {
		sealed, ok := sp.Sealed[f.name]
		if !ok {
			continue
		}
		if *f.val, err = keys.Open(sealed, sectionContext(e.Name, f.name)); err != nil {
			unreadable, *f.val = append(unreadable, f.name), ""
		}
	}
	return spec, key, unreadable, nil
}

// sealedBy lists the ids of the keys that sealed an entry's secrets.
func sealedBy(e store.CatalogEntry) []string {
	var ids []string
	if e.Secret != "" {
		id, _ := secrets.SealedBy(e.Secret)
		ids = append(ids, id)
	}
	var sp storedProvider
	if json.Unmarshal(e.Spec, &sp) == nil {
		for _, name := range slices.Sorted(maps.Keys(sp.Sealed)) {
			id, _ := secrets.SealedBy(sp.Sealed[name])
			ids = append(ids, id)
		}
	}
	return ids
}

// checkSections refuses a section the provider's type does not take, naming the section.
func checkSections(spec ProviderSpec) error {
	for _, ts := range typeSections {
		if ts.present(&spec) && spec.Type != ts.name {
			return &FieldError{Field: ts.name, Message: "only a provider of type " + ts.name + " takes this section (this one's type is " +
				spec.Type + "); leave it out, or set it to null in a PATCH."}
		}
	}
	return nil
}
