package alerts

import (
	"strings"

	"github.com/llmgate/llmgate/internal/secrets"
)

// A webhook's signing secret is stored sealed with the gateway's secret keyring (as provider
// credentials are), bound to the webhook's id: a sealed secret copied into another webhook's row
// does not open. The delivery loop opens it for each attempt, so a rotated key takes effect on
// the next delivery; a secret that no configured key opens fails the attempt, and the attempt's
// error and the log say so without the secret.
//
// Gateways before sealing stored secrets in the clear. Such a secret (it starts with SecretPrefix,
// which a sealed value never does) still signs, so an upgrade breaks no receiver, until
// POST /admin/secrets/reencrypt seals it.

// SecretPrefix starts every webhook secret, so one found in a log or a repository is recognisable.
const SecretPrefix = "whsec_"

// SecretContext binds a webhook's sealed secret to the webhook's id.
func SecretContext(webhookID string) string { return "webhook:" + webhookID }

// OpenSecret returns the signing secret of a webhook from its stored value: opened with keys when
// sealed, as it is when stored in the clear by a gateway before sealing (sealed false). The error
// names the key a sealed value needs, never the value.
func OpenSecret(keys *secrets.Keyring, webhookID, stored string) (secret string, sealed bool, err error) {
	if strings.HasPrefix(stored, SecretPrefix) {
		return stored, false, nil
	}
	secret, err = keys.Open(stored, SecretContext(webhookID))
	return secret, true, err
}
