// Overview: requests, errors, tokens and spend over time (by hour, day or month) as charts, the
// range's totals, the top models, users and tenants by spend, the 429s of the last hours and the
// deployments' breaker states. Read only: everything comes from GET /admin/usage/series,
// /admin/usage/top and /admin/deployments.

import { timeChart, legend } from '../chart.js';
import { ensureStyles, fmtInt, fmtCompact, fmtUSD, usdAxis, statCard, segmented } from './shared.js';

const buckets = [['hour', 'Last 24 hours'], ['day', 'Last 30 days'], ['month', 'Last 12 months']];

/** axisLabel shows a bucket's start in local time, short. */
function axisLabel(iso, bucket) {
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  if (bucket === 'hour') return `${p(d.getHours())}:00`;
  if (bucket === 'day') return `${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}`;
}

export const page = {
  id: 'overview',
  title: 'Overview',
  area: 'billing',
  render: async (root, ctx) => {
    ensureStyles();
    const ui = ctx.ui;
    const el = ui.el;
    let bucket = buckets.some(([b]) => b === ctx.route.params.bucket) ? ctx.route.params.bucket : 'hour';
    const body = el('div', { 'aria-live': 'polite' });
    root.append(ui.toolbar(segmented(ui, 'Time range', buckets, bucket, (b) => {
      bucket = b;
      ctx.setParams({ bucket: b });
      draw();
    })), body);

    async function draw() {
      ui.clear(body).append(el('p', { class: 'muted', text: 'Loading…' }));
      let series;
      try {
        series = await ctx.api.get('/admin/usage/series', { bucket });
      } catch (err) {
        ui.clear(body).append(ui.errorBox(err.message));
        return;
      }
      const range = { from: series.from, to: series.to };
      const rows = series.data || [];
      const labels = rows.map((r) => axisLabel(r.start, bucket));
      const t = series.total;
      const last = rows[rows.length - 1] || {};
      const stats = el('div', { class: 'stats' },
        statCard(ui, 'Requests', fmtInt(t.requests)),
        statCard(ui, 'Errors', fmtInt(t.errors), t.errors > 0),
        statCard(ui, '429s', fmtInt(t.rate_limited), t.rate_limited > 0),
        statCard(ui, bucket === 'hour' ? '429s this hour' : bucket === 'day' ? '429s today' : '429s this month', fmtInt(last.rate_limited || 0), (last.rate_limited || 0) > 0),
        statCard(ui, 'Tokens', fmtInt(t.prompt_tokens + t.completion_tokens)),
        statCard(ui, 'Spend', fmtUSD(t.cost_usd)));

      const reqSeries = [
        { name: 'Requests', values: rows.map((r) => r.requests) },
        { name: 'Errors', values: rows.map((r) => r.errors), cls: 'alt' },
        { name: '429s', values: rows.map((r) => r.rate_limited), cls: 'third' },
      ];
      const tokSeries = [
        { name: 'Prompt tokens', kind: 'line', values: rows.map((r) => r.prompt_tokens) },
        { name: 'Completion tokens', kind: 'line', values: rows.map((r) => r.completion_tokens), cls: 'alt' },
      ];
      const spendSeries = [{ name: 'Spend (USD)', values: rows.map((r) => Number(r.cost_usd)) }];
      const charts = el('div', { class: 'charts' },
        ui.section('Requests and errors', timeChart({ labels, series: reqSeries, format: fmtCompact, label: 'Requests, errors and 429s per ' + bucket }), legend(reqSeries)),
        ui.section('Tokens', timeChart({ labels, series: tokSeries, format: fmtCompact, label: 'Prompt and completion tokens per ' + bucket }), legend(tokSeries)),
        ui.section('Spend', timeChart({ labels, series: spendSeries, format: usdAxis, label: 'Spend in USD per ' + bucket }), legend(spendSeries)));

      const tops = el('div', { class: 'columns' });
      ui.clear(body).append(stats, charts, tops);
      const dims = [['model', 'Top models'], ['user', 'Top users']];
      if (!ctx.principal.tenant) dims.push(['tenant', 'Top tenants']);
      for (const [by, heading] of dims) {
        const holder = el('div', {}, el('p', { class: 'muted', text: 'Loading…' }));
        tops.append(ui.section(heading + ' by spend', holder));
        ctx.api.get('/admin/usage/top', { by, limit: 5, ...range }).then((top) => {
          ui.clear(holder).append(ui.table({
            caption: heading, empty: 'No usage in this range.',
            columns: [
              { label: by[0].toUpperCase() + by.slice(1), render: (r) => usageLink(by, r.id) },
              { label: 'Requests', class: 'num', render: (r) => fmtInt(r.requests) },
              { label: 'Spend', class: 'num', render: (r) => fmtUSD(r.cost_usd) },
            ],
            rows: top.data,
          }));
        }).catch((err) => ui.clear(holder).append(ui.errorBox(err.message)));
      }
      if (ctx.canRead('deployments')) tops.append(breakers());
    }

    // usageLink opens the usage audit filtered to one model, user or tenant.
    function usageLink(by, id) {
      if (!id) return el('span', { class: 'muted', text: '(none)' });
      const param = { model: 'model', user: 'userId', tenant: 'tenantId', key: 'keyId' }[by];
      return el('a', { href: '#/usage?' + new URLSearchParams({ [param]: id }).toString(), text: id });
    }

    function breakers() {
      const holder = el('div', {}, el('p', { class: 'muted', text: 'Loading…' }));
      ctx.api.get('/admin/deployments').then((res) => {
        const deps = res.data || [];
        const open = deps.filter((d) => d.health && d.health.breaker !== 'closed').length;
        ui.clear(holder).append(
          el('p', { text: open ? `${open} of ${deps.length} deployments have a breaker not closed.` : `All ${deps.length} breakers closed.` }),
          ui.table({
            caption: 'Breaker states', empty: 'No deployments.',
            columns: [
              { label: 'Deployment', render: (d) => el('a', { href: '#/providers', text: d.id }) },
              { label: 'Breaker', render: (d) => breakerBadge(ui, d) },
            ],
            rows: deps,
          }));
      }).catch((err) => ui.clear(holder).append(ui.errorBox(err.message)));
      return ui.section('Breakers (this replica)', holder);
    }

    await draw();
  },
};

/** breakerBadge shows a deployment's breaker and whether it is enabled. */
export function breakerBadge(ui, d) {
  if (!d.enabled) return ui.badge('disabled', 'muted');
  const b = d.health ? d.health.breaker : 'unknown';
  return ui.badge(b, b === 'closed' ? 'ok' : b === 'open' ? 'bad' : 'warn');
}
