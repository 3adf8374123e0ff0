package billing

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// PolicyRange is what the budget metrics read of the quota policies: each policy applied now.
type PolicyRange interface {
	Each(fn func(store.QuotaPolicy))
}

// budgetCollector reports, at scrape time, each tenant's monthly budget (its model-less policy)
// and its spend this month as the guard last read it from the ledger, so an alert can tell a
// spend rate that will exhaust the budget before the month ends. Tenants only: they are few and
// made by operators, whereas users and keys would make the series unbounded. Nothing is counted
// on the request path.
type budgetCollector struct {
	g        *Guard
	policies PolicyRange
	budget   *prometheus.Desc
	spent    *prometheus.Desc
	now      func() time.Time
}

// BudgetCollector returns a Prometheus collector of llmgate_tenant_budget_month_usd{tenant} and
// llmgate_tenant_spend_month_usd{tenant}. The spend is reported for tenants whose budget the
// guard has checked recently (a request of the tenant in the last snapshotForget), from the same
// snapshot admission uses: it lags the ledger by up to snapshotTTL after a request.
func (g *Guard) BudgetCollector(policies PolicyRange) prometheus.Collector {
	return &budgetCollector{g: g, policies: policies, now: time.Now,
		budget: prometheus.NewDesc("llmgate_tenant_budget_month_usd",
			"Monthly budget of each tenant with one (its model-less quota policy), in USD.", []string{"tenant"}, nil),
		spent: prometheus.NewDesc("llmgate_tenant_spend_month_usd",
			"Spend this calendar month (UTC) of each tenant with a monthly budget, in USD, from the ledger as the balance guard last read it.", []string{"tenant"}, nil),
	}
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.budget
	ch <- c.spent
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	type budget struct {
		tenant string
		usd    float64
	}
	var budgets []budget
	c.policies.Each(func(p store.QuotaPolicy) {
		if p.SubjectType == string(quota.KindTenant) && p.Model == "" && p.BudgetMonthMicroUSD != nil && *p.BudgetMonthMicroUSD > 0 {
			budgets = append(budgets, budget{p.SubjectID, float64(*p.BudgetMonthMicroUSD) / 1e6})
		}
	})
	y, m, _ := c.now().UTC().Date()
	for _, b := range budgets {
		ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, b.usd, b.tenant)
		s, ok := c.g.spends.peek(string(quota.KindTenant) + "\x00" + b.tenant + "\x00")
		if !ok {
			continue
		}
		if sy, sm, _ := time.Unix(s.day*86400, 0).UTC().Date(); sy != y || sm != m {
			continue // read last month: this month's is not known yet
		}
		ch <- prometheus.MustNewConstMetric(c.spent, prometheus.GaugeValue, float64(s.spentMo)/1e9, b.tenant)
	}
}
