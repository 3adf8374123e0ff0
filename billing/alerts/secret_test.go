package alerts

import (
	"bytes"
	"errors"
	"testing"

	"github.com/llmgate/llmgate/internal/secrets"
)

// TestOpenSecret: a sealed secret opens for its own webhook only and with a key that sealed it;
// a secret stored in the clear before sealing is used as it is.
func TestOpenSecret(t *testing.T) {
	a, b := bytes.Repeat([]byte{1}, secrets.KeySize), bytes.Repeat([]byte{2}, secrets.KeySize)
	ringA, _ := secrets.New(a)
	ringBA, _ := secrets.New(b, a)
	ringB, _ := secrets.New(b)
	const plain = SecretPrefix + "0123abcd"
	sealed, err := ringA.Seal(plain, SecretContext("wh_1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		keys       *secrets.Keyring
		id, stored string
		want       string
		wantSealed bool
		wantErr    error
	}{
		{"sealed, its key", ringA, "wh_1", sealed, plain, true, nil},
		{"sealed, key now previous", ringBA, "wh_1", sealed, plain, true, nil},
		{"sealed, key gone", ringB, "wh_1", sealed, "", true, secrets.ErrUnknownKey},
		{"sealed, no keyring", nil, "wh_1", sealed, "", true, secrets.ErrNoKey},
		{"copied to another webhook", ringA, "wh_2", sealed, "", true, nil},
		{"plaintext of before", nil, "wh_1", plain, plain, false, nil},
	} {
		got, isSealed, err := OpenSecret(c.keys, c.id, c.stored)
		failed := c.want == ""
		if got != c.want || isSealed != c.wantSealed || (err != nil) != failed || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
			t.Errorf("%s: %q %v %v", c.name, got, isSealed, err)
		}
		if err != nil && bytes.Contains([]byte(err.Error()), []byte(plain)) {
			t.Errorf("%s: the error shows the secret: %v", c.name, err)
		}
	}
}
