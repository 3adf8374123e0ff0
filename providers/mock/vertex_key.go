package mock

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
)

// ServiceAccount is a Google service account made up for a test: a fresh RSA key, never stored,
// and the JSON key file a Vertex AI provider is given.
type ServiceAccount struct {
	Email string
	Key   *rsa.PrivateKey
}

// NewServiceAccount makes a service account with a new 2048-bit key.
func NewServiceAccount(email string) (*ServiceAccount, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &ServiceAccount{Email: email, Key: k}, nil
}

// Trust is the Options.ServiceAccounts entry of the account.
func (sa *ServiceAccount) Trust() map[string]*rsa.PublicKey {
	return map[string]*rsa.PublicKey{sa.Email: &sa.Key.PublicKey}
}

// JSON renders the account's key file as Google issues it, with its token_uri pointing at
// tokenURI (the mock's /token).
func (sa *ServiceAccount) JSON(projectID, tokenURI string) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(sa.Key)
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     projectID,
		"private_key_id": "mock-key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   sa.Email,
		"client_id":      "100000000000000000001",
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      tokenURI,
	})
	return b
}
