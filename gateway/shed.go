package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/llmgate/llmgate/api"
)

// shedder is the global rate limit of one replica: a token bucket in front of the public API.
// It is per replica on purpose. Its job is to keep this process within what it can serve, which
// is a local property (its cores, its sockets); a cluster-wide bucket in Redis would cost a
// round trip per request before any work, fail with Redis, and shed on one replica for the load
// of another. N replicas behind a load balancer take N × the rate; per-caller fairness is the
// quotas' job, exact across replicas.
type shedder struct {
	lim        *rate.Limiter
	retryAfter string // whole seconds until a token is back, for the 429
	shed       prometheus.Counter
}

// newShedder returns nil when the limit is off (a rate ≤ 0).
func newShedder(l RateLimit, reg prometheus.Registerer) *shedder {
	if l.RequestsPerSecond <= 0 {
		return nil
	}
	burst := l.Burst
	if burst <= 0 {
		burst = max(1, int(math.Ceil(l.RequestsPerSecond)))
	}
	s := &shedder{
		lim:        rate.NewLimiter(rate.Limit(l.RequestsPerSecond), burst),
		retryAfter: strconv.Itoa(max(1, int(math.Ceil(1/l.RequestsPerSecond)))),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmgate_shed_total",
			Help: "Public API requests refused 429 by the replica's global rate limit (gateway.global_rate_limit), before any work.",
		}),
	}
	if reg != nil {
		reg.MustRegister(s.shed)
	}
	return s
}

// errOverloaded answers a request the global rate limit sheds.
var errOverloaded = newError(http.StatusTooManyRequests, api.TypeRateLimit, "gateway_overloaded", "",
	"The gateway is receiving more requests than it is configured to take; retry after the time in Retry-After.")

// shed answers 429 to a public API request the bucket has no token for, before anything else
// is done for it: no request id, no key lookup, no body read. Health checks pass: a load
// balancer must not take a busy replica for a dead one.
func (g *Gateway) shed(c *gin.Context) {
	s := g.shedder
	if s == nil || strings.HasPrefix(c.Request.URL.Path, "/health/") || s.lim.Allow() {
		c.Next()
		return
	}
	s.shed.Inc()
	c.Header("Retry-After", s.retryAfter)
	_, body := classify(errOverloaded)
	body.Write(c.Writer, http.StatusTooManyRequests)
	c.Abort()
}

// Validate names the first invalid field of the gateway section.
func (o Options) Validate() error {
	if l := o.GlobalRateLimit; l.RequestsPerSecond < 0 || math.IsNaN(l.RequestsPerSecond) || math.IsInf(l.RequestsPerSecond, 0) {
		return fmt.Errorf("gateway.global_rate_limit.requests_per_second: %v is not a rate ≥ 0 (0: no limit)", l.RequestsPerSecond)
	}
	if o.GlobalRateLimit.Burst < 0 {
		return fmt.Errorf("gateway.global_rate_limit.burst: %d is negative", o.GlobalRateLimit.Burst)
	}
	if h := o.UserIDHeader; h != "" && !validHeaderName(h) {
		return fmt.Errorf("gateway.user_id_header: %q is not a header name", h)
	}
	if h := http.CanonicalHeaderKey(o.UserIDHeader); reservedUpstreamHeaders[h] {
		return fmt.Errorf("gateway.user_id_header: %q is a header the gateway sets itself", o.UserIDHeader)
	}
	return nil
}

// reservedUpstreamHeaders are the headers a user id header must not replace: the gateway's own
// and the providers' credentials.
var reservedUpstreamHeaders = map[string]bool{"Authorization": true, "Traceparent": true, "X-Request-Id": true,
	"Content-Type": true, "Content-Length": true, "Accept": true, "Host": true, "X-Api-Key": true, "Api-Key": true,
	"X-Goog-Api-Key": true, "Anthropic-Version": true}

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
