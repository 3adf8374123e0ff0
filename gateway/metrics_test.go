package gateway

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCachedChildrenAreTheSeries: a child the request path takes from the cache is the vector's
// own series, the one /metrics shows, for each label set apart.
func TestCachedChildrenAreTheSeries(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry(), 0)
	for i := 0; i < 3; i++ {
		m.requestsBy.with([3]string{"chat/completions", "m", "200"}).Inc()
	}
	m.requestsBy.with([3]string{"chat/completions", "m", "429"}).Inc()
	m.keyHits.Inc()
	m.overheadBy.with("embeddings").Observe(0.001)
	if n := testutil.ToFloat64(m.requests.WithLabelValues("chat/completions", "m", "200")); n != 3 {
		t.Errorf("requests{200} = %v, want 3", n)
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("chat/completions", "m", "429")); n != 1 {
		t.Errorf("requests{429} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.keyLookups.WithLabelValues("cache")); n != 1 {
		t.Errorf("key lookups{cache} = %v, want 1", n)
	}
	if n := testutil.CollectAndCount(m.overhead); n != 1 {
		t.Errorf("%d overhead series, want 1", n)
	}
}
