package gateway

import (
	"context"
	"errors"
	"math/big"
	"net/http"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// MoneyGuard is what admission needs of billing (billing.Guard): who pays for a request, with
// the figures of their credit account, and the money of subjects whose policy sets a budget.
type MoneyGuard interface {
	// Payer decides who pays; the error is billing.ErrInsufficientCredit when the ledger shows
	// that account exhausted.
	Payer(ctx context.Context, userID, tenantID string) (billing.Payer, error)
	// BudgetMoney is the Money of a subject whose policy sets a budget (nil: none).
	BudgetMoney(ctx context.Context, p store.QuotaPolicy) *quota.Money
}

// postpaid is the MoneyGuard of a gateway given none: nobody has a credit account or a budget.
type postpaid struct{}

func (postpaid) Payer(context.Context, string, string) (billing.Payer, error) {
	return billing.Payer{Known: true}, nil
}

func (postpaid) BudgetMoney(context.Context, store.QuotaPolicy) *quota.Money { return nil }

var errInsufficientCredit = newError(http.StatusTooManyRequests, api.TypeInsufficientQuota, "insufficient_quota", "",
	"You exceeded your current quota: the prepaid credit balance is exhausted. Top up to continue.")

// whoPays asks the guard who pays for the request, as the 429 to answer when that account is
// exhausted.
func (x *exchange) whoPays() (billing.Payer, error) {
	p, err := x.g.money.Payer(x.ctx, x.id.Key.UserID, x.id.Key.TenantID)
	if errors.Is(err, billing.ErrInsufficientCredit) {
		return p, errInsufficientCredit
	}
	return p, err
}

// reserveCost is a request's money reservation in nano-USD, rounded up: its token reservation
// (prompt estimate at the input price, the rest at the output price) at the highest prices among
// the upstream models it may reach, or the public model's price when none of them has one. Zero
// when no price is known: such a request is not costed either.
func (x *exchange) reserveCost(req request, upstreams []string, tokens int64) int64 {
	var in, out, perRequest int64 // perRequest: micro-USD, the images, the audio seconds and the request price
	var chars int64               // pico-USD: the speech input's characters
	audio := req.audioFacts()
	found := false
	for _, models := range [][]string{upstreams, {req.model}} {
		for _, m := range models {
			if p, ok := x.g.prices.Lookup(m); ok {
				found = true
				in, out = max(in, p.InputPerM), max(out, p.OutputPerM, p.ReasoningPerM)
				perRequest = max(perRequest, req.image.n*maxImagePrice(p)+p.Request+audio.seconds*max(p.AudioSecond, 0))
				chars = max(chars, audio.characters*max(p.CharactersPerM, 0))
			}
		}
		if found {
			break
		}
	}
	if !found {
		return 0
	}
	prompt := min(tokens, int64(len(req.body)/4)+1)
	pico := new(big.Int).Mul(big.NewInt(prompt), big.NewInt(in))
	pico.Add(pico, new(big.Int).Mul(big.NewInt(tokens-prompt), big.NewInt(out)))
	pico.Add(pico, new(big.Int).Mul(big.NewInt(perRequest), big.NewInt(1_000_000)))
	pico.Add(pico, big.NewInt(chars))
	nano := pico.Add(pico, big.NewInt(999)).Div(pico, big.NewInt(1000))
	if !nano.IsInt64() || nano.Int64() > quota.MaxMoney {
		return quota.MaxMoney
	}
	return nano.Int64()
}

// maxImagePrice is the highest per-image price of p (0 when it has none): an image request
// reserves it for each image it asks for, whatever size and quality the answer comes in.
func maxImagePrice(p billing.Price) int64 {
	var m int64
	for _, v := range p.Images {
		m = max(m, v)
	}
	return m
}

// moneyRefusal is the 429 for a request refused on a money dimension: OpenAI's
// insufficient_quota, as for an exhausted balance. A budget names when it resets (Retry-After);
// a balance waits for a top-up.
func moneyRefusal(res quota.Result) *Error {
	msg := "You exceeded your current quota: the prepaid credit balance is used up, counting the requests still in flight. Top up to continue."
	switch res.Dimension {
	case quota.DimBudgetDay:
		msg = "The daily budget of " + res.Subject + " is spent (counting requests in flight). It resets at 00:00 UTC."
	case quota.DimBudgetMonth:
		msg = "The monthly budget of " + res.Subject + " is spent (counting requests in flight). It resets on the first of the month, 00:00 UTC."
	}
	e := newError(http.StatusTooManyRequests, api.TypeInsufficientQuota, "insufficient_quota", "", msg)
	e.retryAfter = res.RetryAfter
	return e
}
