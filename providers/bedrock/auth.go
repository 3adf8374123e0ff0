package bedrock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// This file authenticates requests: a Bedrock API key as a bearer token, or AWS Signature
// Version 4 with the SDK's signer and the SDK's credential chain (PROVIDERS-2.md §4.8, §4.9).
// Signing by hand is a classic source of 403s (the canonical path is escaped twice for every
// service but S3, for one), so the SDK's signer does it.

// SigningName is the service name SigV4 signs Bedrock Runtime requests for (the endpoint's
// prefix is bedrock-runtime, the signing name is not).
const SigningName = "bedrock"

// authenticator adds the credentials to one request. Safe for concurrent use.
type authenticator struct {
	bearer string                  // a Bedrock API key; SigV4 is not used when set
	creds  aws.CredentialsProvider // cached by the SDK: refreshed before expiry, shared by requests
	region string
	signer *v4.Signer
	now    func() time.Time

	mu      sync.Mutex
	secrets []string // the configured secrets, then those the chain has handed out
	known   string   // the secret access key of the last credentials seen
}

// newAuthenticator picks the credentials: an API key, the static keys of the settings, or the
// SDK's default chain (environment, shared config and credentials files with the profile named,
// web identity, container and instance roles). It also settles the region, which the chain's
// configuration may name when the settings do not. No credential is fetched here: the chain
// resolves on the first request, so a gateway starts without reaching an identity service.
func newAuthenticator(ctx context.Context, apiKey string, s Settings) (*authenticator, error) {
	a := &authenticator{bearer: apiKey, region: s.Region, signer: v4.NewSigner(), now: time.Now}
	for _, v := range []string{apiKey, s.SecretAccessKey, s.SessionToken} {
		if v != "" {
			a.secrets = append(a.secrets, v)
		}
	}
	// The messages name the field to fix, as the config file and the admin API report them.
	switch {
	case s.AccessKeyID == "" && s.SecretAccessKey != "":
		return nil, fmt.Errorf("bedrock.access_key_id: required with secret_access_key (they go together)")
	case s.AccessKeyID != "" && s.SecretAccessKey == "":
		return nil, fmt.Errorf("bedrock.secret_access_key: required with access_key_id (they go together)")
	case s.SessionToken != "" && s.AccessKeyID == "":
		return nil, fmt.Errorf("bedrock.session_token: needs access_key_id and secret_access_key")
	case apiKey != "" && s.AccessKeyID != "":
		return nil, fmt.Errorf("api_key: a Bedrock API key and bedrock's access keys exclude each other")
	}
	if apiKey != "" && a.region != "" {
		return a, nil
	}
	if s.AccessKeyID != "" {
		a.creds = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, s.SessionToken))
		if a.region != "" {
			return a, nil
		}
	}
	opts := []func(*config.LoadOptions) error{}
	if s.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(s.Profile))
	}
	if a.region != "" {
		opts = append(opts, config.WithRegion(a.region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("bedrock: loading the AWS configuration: %w", err)
	}
	if a.region == "" {
		a.region = cfg.Region
	}
	if a.region == "" {
		return nil, fmt.Errorf("bedrock.region: required (or AWS_REGION, or the profile's region)")
	}
	if a.creds == nil && apiKey == "" {
		a.creds = cfg.Credentials
		if a.creds == nil {
			return nil, fmt.Errorf("bedrock: no AWS credentials are configured")
		}
	}
	return a, nil
}

// authorize signs hr, whose body is body, or sets the API key. Failing to obtain credentials
// is returned as an error: the upstream never saw the request.
func (a *authenticator) authorize(ctx context.Context, hr *http.Request, body []byte) error {
	if a.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+a.bearer)
		return nil
	}
	creds, err := a.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("bedrock: obtaining AWS credentials: %w", err)
	}
	a.remember(creds)
	sum := sha256.Sum256(body)
	if err := a.signer.SignHTTP(ctx, creds, hr, hex.EncodeToString(sum[:]), SigningName, a.region, a.now()); err != nil {
		return fmt.Errorf("bedrock: signing the request: %w", err)
	}
	return nil
}

// remember adds the secrets of credentials the chain handed out to those redacted from the
// upstream's error text.
func (a *authenticator) remember(c aws.Credentials) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.SecretAccessKey == a.known {
		return
	}
	a.known = c.SecretAccessKey
	next := slices.Clone(a.secrets) // callers may hold the previous slice
	for _, v := range []string{c.SecretAccessKey, c.SessionToken} {
		if v != "" && !slices.Contains(next, v) {
			next = append(next, v)
		}
	}
	if len(next) > 64 { // rotated many times over: keep the latest
		next = next[len(next)-64:]
	}
	a.secrets = next
}

// credentials are the secrets known so far; the slice is never modified once handed out.
func (a *authenticator) credentials() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.secrets
}
