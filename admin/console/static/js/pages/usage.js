// Usage audit: search the usage records by user, key, model, tenant, status, time range and trace
// id (GET /admin/audit), open a request's full record, and download the current search as CSV
// (GET /admin/audit.csv: a plain same-origin link, so the session cookie goes with it and no
// token ever appears in a URL).

import { ensureStyles, fmtInt, fmtUSD } from './shared.js';

// The filters, as GET /admin/audit names them (camelCase) and the hash route keeps them.
const filterNames = ['userId', 'keyId', 'tenantId', 'model', 'status', 'traceId', 'from', 'to'];

export const page = {
  id: 'usage',
  title: 'Usage audit',
  area: 'usage',
  render: async (root, ctx) => {
    ensureStyles();
    const ui = ctx.ui;
    const el = ui.el;
    const query = {};
    for (const n of filterNames) if (ctx.route.params[n]) query[n] = ctx.route.params[n];
    const size = 50;
    let pageNo = 1;

    const fields = [
      { name: 'userId', label: 'User', value: query.userId },
      { name: 'keyId', label: 'Key id', value: query.keyId },
      { name: 'model', label: 'Model', value: query.model },
      { name: 'traceId', label: 'Trace id', value: query.traceId },
      { name: 'status', label: 'HTTP status', type: 'number', value: query.status, min: 100, max: 999 },
      { name: 'from', label: 'From', type: 'datetime', value: query.from },
      { name: 'to', label: 'To', type: 'datetime', value: query.to },
    ];
    if (!ctx.principal.tenant) fields.splice(2, 0, { name: 'tenantId', label: 'Tenant', value: query.tenantId });
    const filters = ui.form({
      class: 'form-grid', submit: 'Search', fields,
      onSubmit: async (v) => {
        for (const n of filterNames) delete query[n];
        for (const n of filterNames) {
          const val = v[n];
          if (val === undefined || val === null || val === '') continue;
          query[n] = String(val);
        }
        ctx.setParams(query);
        pageNo = 1;
        await draw(filters);
      },
    });

    const csv = el('a', { class: 'btn', download: 'usage_records.csv', text: 'Download CSV' });
    const frame = el('div');
    const status = el('span', { class: 'page-status', 'aria-live': 'polite' });
    const prev = ui.button('Previous', () => { pageNo -= 1; draw(); }, { small: true });
    const next = ui.button('Next', () => { pageNo += 1; draw(); }, { small: true });
    root.append(ui.section('Search', filters), ui.toolbar(csv, el('span', { class: 'muted', text: 'CSV of every record the search finds, newest first.' })),
      frame, el('div', { class: 'pager' }, prev, status, next));

    async function draw(form) {
      csv.setAttribute('href', ctx.api.url('/admin/audit.csv', query));
      prev.disabled = true;
      next.disabled = true;
      status.textContent = 'Loading…';
      let res;
      try {
        res = await ctx.api.get('/admin/audit', { ...query, page: pageNo, size });
      } catch (err) {
        status.textContent = '';
        if (form && err.param) throw err; // shown next to the field it names
        ui.clear(frame).append(ui.errorBox(err.message));
        return;
      }
      const rows = res.data || [];
      ui.clear(frame).append(ui.table({
        caption: 'Usage records', empty: 'No usage record matches.',
        columns: [
          { label: 'Started', render: (r) => ui.timeCell(r.started_at) },
          { label: 'Request', render: (r) => el('button', { type: 'button', class: 'link-button', text: r.request_id.slice(0, 13) + '…',
            'aria-label': 'Show the record of request ' + r.request_id, title: r.request_id, on: { click: () => show(r) } }) },
          { label: 'User', render: (r) => r.user_id },
          // A key id is 36 characters, and ids made close together share their start (it is a
          // time): the end tells keys apart and keeps the cost on a laptop's screen; the whole id
          // is in the title and the record's dialog.
          { label: 'Key', render: (r) => (r.key_id && r.key_id.length > 16
            ? el('span', { title: r.key_id, text: r.key_id.slice(0, 4) + '…' + r.key_id.slice(-8) }) : r.key_id) },
          { label: 'Model', render: (r) => r.model },
          { label: 'Status', render: (r) => ui.badge(String(r.status), r.status < 400 ? 'ok' : r.status === 429 ? 'warn' : 'bad') },
          { label: 'Tokens in/out', class: 'num', render: (r) => `${fmtInt(r.prompt_tokens)} / ${fmtInt(r.completion_tokens)}` },
          { label: 'Cost', class: 'num', render: (r) => fmtUSD(r.cost_usd) },
          { label: 'Price version', render: (r) => r.price_version },
          { label: 'Latency', class: 'num', render: (r) => `${fmtInt(r.latency_ms)} ms` },
        ],
        rows,
      }));
      status.textContent = rows.length ? `page ${pageNo}: ${(pageNo - 1) * size + 1}–${(pageNo - 1) * size + rows.length}` : '';
      prev.disabled = pageNo <= 1;
      next.disabled = rows.length < size;
    }

    function show(r) {
      const order = ['request_id', 'client_request_id', 'trace_id', 'started_at', 'ended_at', 'tenant_id', 'user_id', 'key_id',
        'session_id', 'model', 'upstream_model', 'provider', 'deployment', 'endpoint', 'stream', 'status', 'error_type',
        'prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens', 'units', 'unit', 'usage_source', 'cost_usd',
        'price_version', 'latency_ms', 'ttft_ms'];
      const keys = [...order.filter((k) => k in r), ...Object.keys(r).filter((k) => !order.includes(k))];
      const pairs = keys.map((k) => [k, k === 'cost_usd' ? fmtUSD(r[k]) : r[k] === null || r[k] === undefined ? '' : String(r[k])]);
      const body = el('div', {}, ui.definitionList(pairs));
      if (r.trace_id) {
        body.append(el('p', {}, el('a', { href: '#/usage?' + new URLSearchParams({ traceId: r.trace_id }).toString(), text: 'Every record of this trace' })));
      }
      const d = ui.dialog({ title: 'Request ' + r.request_id, body, wide: true });
      body.querySelectorAll('a').forEach((a) => a.addEventListener('click', () => d.close()));
    }

    await draw();
  },
};
