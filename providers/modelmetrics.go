package providers

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// modelCollector reports, at scrape time, how many deployments each public model of the routing
// table in use has and how many of them can take requests, so that "every deployment of a model
// is down" is one comparison. It reads the breakers the balancer keeps; nothing is counted on the
// request path.
type modelCollector struct {
	b         *Balancer
	router    func() *Router
	total     *prometheus.Desc
	available *prometheus.Desc
}

// ModelCollector returns a Prometheus collector of llmgate_model_deployments{model} (enabled
// deployments) and llmgate_model_deployments_available{model} (enabled ones whose breaker is not
// open) over the routing table router returns at each scrape.
func (b *Balancer) ModelCollector(router func() *Router) prometheus.Collector {
	return &modelCollector{b: b, router: router,
		total: prometheus.NewDesc("llmgate_model_deployments",
			"Enabled deployments of each public model.", []string{"model"}, nil),
		available: prometheus.NewDesc("llmgate_model_deployments_available",
			"Enabled deployments of each public model whose circuit breaker lets requests through (closed or half-open).", []string{"model"}, nil),
	}
}

func (c *modelCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.total
	ch <- c.available
}

func (c *modelCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.router()
	if r == nil {
		return
	}
	for _, m := range r.Models() {
		total, up := 0, 0
		for _, d := range r.Deployments(m) {
			if !d.Enabled {
				continue
			}
			total++
			if c.b.of(d).breaker.State() != gobreaker.StateOpen {
				up++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(total), m)
		ch <- prometheus.MustNewConstMetric(c.available, prometheus.GaugeValue, float64(up), m)
	}
}
