// Quotas: the quota policies of users, keys and tenants (GET /admin/quota/policies) beside the
// tier defaults they override (GET /admin/quota/tiers); set or delete a policy
// (PUT/DELETE /admin/quota/policies/{type}/{id}); a user's current usage against its effective
// limits (GET /admin/quota/usage/{userId}); and clearing a session's counters
// (DELETE /admin/quota/session/{sessionId}).

import { ensureStyles, fmtInt, fmtUSD } from './shared.js';

const lim = (v) => (v === null || v === undefined ? 'inherit' : v === 0 ? 'unlimited' : fmtInt(v));
const tierLim = (v) => (v ? fmtInt(v) : 'unlimited');

export const page = {
  id: 'quotas',
  title: 'Quotas',
  area: 'quota',
  render: async (root, ctx) => {
    ensureStyles();
    const ui = ctx.ui;
    const el = ui.el;
    const writable = ctx.canWrite('quota');
    const query = { subject_type: ctx.route.params.subject_type, subject_id: ctx.route.params.subject_id };

    // Tier defaults.
    const tiersBox = el('div', {}, el('p', { class: 'muted', text: 'Loading…' }));
    ctx.api.get('/admin/quota/tiers').then((t) => {
      ui.clear(tiersBox).append(
        el('p', { class: 'muted' }, 'Users without a tier get ', el('code', { text: t.default_tier }),
          '. A policy overrides its subject\'s tier field by field; keys and tenants have no tier (what no policy sets is unlimited).'),
        ui.table({ caption: 'Tier defaults', rows: [...t.data, { name: '(per session)', ...t.session }], columns: [
          { label: 'Tier', render: (r) => el('code', { text: r.name }) },
          { label: 'RPM', class: 'num', render: (r) => tierLim(r.rpm) },
          { label: 'TPM', class: 'num', render: (r) => tierLim(r.tpm) },
          { label: 'Tokens a day', class: 'num', render: (r) => tierLim(r.tokens_per_day) },
          { label: 'Concurrent', class: 'num', render: (r) => tierLim(r.concurrent) },
        ] }));
    }).catch((err) => ui.clear(tiersBox).append(ui.errorBox(err.message)));

    // Policies.
    const filters = ui.form({
      class: 'toolbar', submit: 'Filter',
      fields: [
        { name: 'subject_type', label: 'Subject type', type: 'select', value: query.subject_type || '',
          options: [{ value: '', label: 'any' }, 'user', 'key', 'tenant'] },
        { name: 'subject_id', label: 'Subject id', value: query.subject_id },
      ],
      onSubmit: async (v) => {
        query.subject_type = v.subject_type;
        query.subject_id = v.subject_id;
        ctx.setParams(query);
        await list.reload();
      },
    });
    const columns = [
      { label: 'Subject', render: (p) => el('span', {}, p.subject_type + ' ', el('code', { text: p.subject_id })) },
      { label: 'Model', render: (p) => p.model || 'every model' },
      { label: 'RPM', class: 'num', render: (p) => lim(p.rpm) },
      { label: 'TPM', class: 'num', render: (p) => lim(p.tpm) },
      { label: 'Tokens a day', class: 'num', render: (p) => lim(p.tokens_per_day) },
      { label: 'Concurrent', class: 'num', render: (p) => lim(p.concurrent) },
      { label: 'Budget a day', class: 'num', render: (p) => fmtUSD(p.budget_usd_per_day) },
      { label: 'Budget a month', class: 'num', render: (p) => fmtUSD(p.budget_usd_per_month) },
      { label: 'Tier defaults', class: 'wrap', render: (p) => tierOf(p) },
      { label: 'Updated', render: (p) => ui.timeCell(p.updated_at) },
    ];
    if (writable) {
      columns.push({ label: 'Actions', render: (p) => el('div', { class: 'row-actions' },
        ui.button('Edit', () => edit(p), { small: true, ariaLabel: `Edit the policy of ${p.subject_type} ${p.subject_id}` }),
        ui.button('Delete', () => remove(p), { small: true, kind: 'danger', ariaLabel: `Delete the policy of ${p.subject_type} ${p.subject_id}` })) });
    }
    const list = ui.pagedTable({ columns, caption: 'Quota policies', empty: 'No policies: every subject has its tier\'s limits.',
      load: ({ limit, offset }) => ctx.api.get('/admin/quota/policies', { ...query, limit, offset }) });

    // tierOf shows, for a user's policy, the user's tier and its effective limits.
    function tierOf(p) {
      if (p.subject_type !== 'user') return el('span', { class: 'muted', text: 'no tier' });
      const span = el('span', { class: 'muted', text: '…' });
      ctx.api.get('/admin/quota/policy/' + encodeURIComponent(p.subject_id)).then((u) => {
        const e = u.effective || {};
        const set = [[e.userRpm, 'rpm'], [e.userTpm, 'tpm'], [e.userTokensPerDay, 'tokens a day'], [e.userConcurrent, 'concurrent']]
          .filter(([v]) => v).map(([v, what]) => `${fmtInt(v)} ${what}`);
        span.textContent = `tier ${u.tier}; in force: ${set.length ? set.join(', ') : 'no limit'}`;
      }).catch(() => { span.textContent = '—'; });
      return span;
    }

    const head = ui.toolbar();
    if (writable) head.append(ui.button('New policy', () => edit(null), { kind: 'primary' }));

    // Usage now.
    const usageOut = el('div', { 'aria-live': 'polite' });
    const usageForm = ui.form({
      class: 'toolbar', submit: 'Show usage',
      fields: [{ name: 'user', label: 'User id', required: true, value: ctx.route.params.user }],
      onSubmit: async (v) => {
        if (!v.user) {
          usageForm.showError('user', 'Name a user.');
          return;
        }
        const u = await ctx.api.get('/admin/quota/usage/' + encodeURIComponent(v.user)).catch((err) => {
          if (err.status === 404 || err.param === 'userId') err.param = 'user';
          throw err;
        });
        const l = u.limits || {};
        const of = (n, max) => `${fmtInt(n)} of ${tierLim(max)}`;
        ui.clear(usageOut).append(ui.definitionList([
          ['User', u.userId], ['Tenant', u.tenantId], ['Tier', u.tier],
          ['Requests in the current minute', of(u.requests, l.userRpm)],
          ['Concurrency slots in use', of(u.concurrent, l.userConcurrent)],
          ['Tokens this minute', of(u.tokensMinute, l.userTpm)],
          ['Tokens today (UTC)', of(u.tokensDay, l.userTokensPerDay)],
        ]));
      },
    });

    const sections = [ui.section('Tier defaults', tiersBox), ui.section('Policies', head, filters, list.element),
      ui.section('Current usage of a user', usageForm, usageOut)];
    if (writable) {
      const sessionForm = ui.form({
        class: 'toolbar', submit: 'Clear session',
        fields: [
          { name: 'session', label: 'Session id (X-Session-Id)', required: true },
          ...(ctx.principal.tenant ? [] : [{ name: 'tenantId', label: 'Tenant', value: 'default' }]),
        ],
        onSubmit: async (v) => {
          if (!v.session) {
            sessionForm.showError('session', 'Name the session.');
            return;
          }
          await ctx.api.send('DELETE', ctx.api.url('/admin/quota/session/' + encodeURIComponent(v.session), { tenantId: v.tenantId }));
          ui.toast(`Session ${v.session} cleared: its counters start again.`, 'ok');
        },
      });
      sections.push(ui.section('Clear a session', el('p', { class: 'muted', text: 'Forgets the request and token counters of one session, for example after raising its limits.' }), sessionForm));
    }
    root.append(...sections);

    function edit(p) {
      const fields = [];
      if (!p) {
        fields.push({ name: 'subject_type', label: 'Subject type', type: 'select', options: ['user', 'key', 'tenant'], value: 'user', required: true },
          { name: 'subject_id', label: 'Subject id', required: true },
          { name: 'model', label: 'Model', help: 'Empty: every model; else the policy applies to that public model only.' });
      }
      const n = (name, label, help) => ({ name, label, type: 'number', min: 0, step: 1, value: p ? p[name] : null, help });
      fields.push(
        n('rpm', 'Requests a minute', 'Empty inherits (the tier for users); 0 is unlimited.'),
        n('tpm', 'Tokens a minute'),
        n('tokens_per_day', 'Tokens a day (UTC)'),
        n('concurrent', 'Concurrent requests'),
        { name: 'budget_usd_per_day', label: 'Budget, USD a day', value: p ? p.budget_usd_per_day : '', help: 'Empty or 0: no budget.' },
        { name: 'budget_usd_per_month', label: 'Budget, USD a month', value: p ? p.budget_usd_per_month : '' });
      const f = ui.form({
        submit: 'Save policy', fields,
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          const type = p ? p.subject_type : v.subject_type;
          const id = p ? p.subject_id : v.subject_id;
          if (!id) {
            f.showError('subject_id', 'Name the subject.');
            return;
          }
          const body = { rpm: v.rpm, tpm: v.tpm, tokens_per_day: v.tokens_per_day, concurrent: v.concurrent };
          if (v.budget_usd_per_day) body.budget_usd_per_day = v.budget_usd_per_day;
          if (v.budget_usd_per_month) body.budget_usd_per_month = v.budget_usd_per_month;
          const path = ctx.api.url(`/admin/quota/policies/${encodeURIComponent(type)}/${encodeURIComponent(id)}`, { model: p ? p.model : v.model });
          await ctx.api.send('PUT', path, body).catch((err) => {
            if (err.param === 'subjectId') err.param = 'subject_id';
            throw err;
          });
          d.close();
          ui.toast('Policy saved.', 'ok');
          list.reload();
        },
      });
      const d = ui.dialog({ title: p ? `Policy of ${p.subject_type} ${p.subject_id}${p.model ? ' on ' + p.model : ''}` : 'New policy', body: f, wide: true, actions: null });
    }

    async function remove(p) {
      if (!(await ui.confirm({ title: 'Delete this policy?', message: `${p.subject_type} ${p.subject_id}${p.model ? ' on ' + p.model : ''} goes back to ${p.subject_type === 'user' ? 'its tier\'s limits' : 'no limit'}.`, confirmLabel: 'Delete', danger: true }))) return;
      try {
        await ctx.api.send('DELETE', ctx.api.url(`/admin/quota/policies/${encodeURIComponent(p.subject_type)}/${encodeURIComponent(p.subject_id)}`, { model: p.model }));
        ui.toast('Policy deleted.', 'ok');
      } catch (err) {
        ui.toast(err.message, 'bad');
      }
      list.reload();
    }
  },
};
