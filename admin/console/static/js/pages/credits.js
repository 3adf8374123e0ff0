// Credits: every prepaid balance (GET /admin/credits); a user's or tenant's account with the
// totals of the last day, week, month and all time, its ledger page by page
// (GET /admin/credits/{type}/{id}/entries), and, for an unscoped admin or billing token, a top-up
// or an adjustment (POST …/topup, …/adjust).

import { ensureStyles, fmtUSD } from './shared.js';

export const page = {
  id: 'credits',
  title: 'Credits',
  area: 'credits',
  render: async (root, ctx) => {
    ensureStyles();
    const ui = ctx.ui;
    const el = ui.el;
    const writable = ctx.canWrite('credits', { global: true });
    const subject = { type: ctx.route.params.type || 'user', id: ctx.route.params.id || '' };
    const out = el('div', { 'aria-live': 'polite' });
    const pick = ui.form({
      class: 'toolbar', submit: 'Show',
      fields: [
        { name: 'type', label: 'Subject type', type: 'select', options: ['user', 'tenant'], value: subject.type },
        { name: 'id', label: 'Subject id', required: true, value: subject.id },
      ],
      onSubmit: async (v) => {
        if (!v.id) {
          pick.showError('id', 'Name a user or tenant.');
          return;
        }
        subject.type = v.type;
        subject.id = v.id;
        ctx.setParams(subject);
        await show();
      },
    });
    // Every balance; a row opens its account below.
    const balances = ui.pagedTable({ size: 20, caption: 'Balances', empty: 'No credit accounts yet.',
      load: ({ limit, offset }) => ctx.api.get('/admin/credits', { limit, offset }),
      columns: [
        { label: 'Subject', render: (a) => el('button', { type: 'button', class: 'link-button', text: `${a.subject_type} ${a.subject_id}`,
          'aria-label': `Open the account of ${a.subject_type} ${a.subject_id}`, on: { click: () => open(a.subject_type, a.subject_id) } }) },
        { label: 'Balance', class: 'num', render: (a) => fmtUSD(a.balance_usd) },
        { label: 'Updated', render: (a) => ui.timeCell(a.updated_at) },
      ] });
    root.append(ui.section('Balances', balances.element), ui.section('Account', pick), out);

    async function open(type, id) {
      subject.type = type;
      subject.id = id;
      pick.input('type').value = type;
      pick.input('id').value = id;
      ctx.setParams(subject);
      await show();
      out.scrollIntoView?.({ block: 'start' });
    }
    const base = () => `/admin/credits/${encodeURIComponent(subject.type)}/${encodeURIComponent(subject.id)}`;

    async function show() {
      ui.clear(out).append(el('p', { class: 'muted', text: 'Loading…' }));
      let acct = null;
      try {
        acct = await ctx.api.get(base(), { limit: 1 });
      } catch (err) {
        if (err.code !== 'account_not_found') {
          ui.clear(out).append(ui.errorBox(err.message));
          return;
        }
      }
      ui.clear(out);
      if (!acct) {
        out.append(ui.section('Balance', el('p', { text: `${subject.type} ${subject.id} has no credit account yet${writable ? ': a top-up creates one.' : '.'}` })));
      } else {
        const periods = acct.periods || {};
        out.append(ui.section('Balance',
          el('p', { class: 'stats' }, el('span', { class: 'stat' }, el('span', { class: 'stat-label', text: 'Balance' }),
            el('span', { class: 'stat-value', 'data-balance': acct.balance_usd, text: fmtUSD(acct.balance_usd) }))),
          ui.table({ caption: 'Totals by period', rows: ['24h', '7d', '30d', 'all'].map((p) => ({ p, ...(periods[p] || {}) })), columns: [
            { label: 'Period', render: (r) => r.p },
            { label: 'Entries', class: 'num', render: (r) => String(r.entries ?? 0) },
            { label: 'Granted', class: 'num', render: (r) => fmtUSD(r.by_kind?.grant?.amount_usd || '0') },
            { label: 'Charged', class: 'num', render: (r) => fmtUSD(r.by_kind?.charge?.amount_usd || '0') },
            { label: 'Adjusted', class: 'num', render: (r) => fmtUSD(r.by_kind?.adjust?.amount_usd || '0') },
            { label: 'Net', class: 'num', render: (r) => fmtUSD(r.net_usd || '0') },
          ] })));
        const ledger = ui.pagedTable({ size: 20, caption: 'Ledger', empty: 'No entries.',
          load: ({ limit, offset }) => ctx.api.get(base() + '/entries', { limit, offset }),
          columns: [
            { label: 'When', render: (e) => ui.timeCell(e.created_at) },
            { label: 'Kind', render: (e) => ui.badge(e.kind, e.kind === 'charge' ? 'muted' : e.kind === 'grant' ? 'ok' : 'warn') },
            { label: 'Amount', class: 'num', render: (e) => fmtUSD(e.amount_usd) },
            { label: 'Request', render: (e) => (e.request_id ? el('code', { text: e.request_id }) : '') },
            { label: 'Note', class: 'wrap', render: (e) => e.note },
          ] });
        out.append(ui.section('Ledger, newest first', ledger.element));
      }
      if (writable) {
        out.append(ui.section('Top up or adjust', el('div', { class: 'columns' },
          moveForm('topup', 'Top up', 'A positive amount in USD.'), moveForm('adjust', 'Adjust', 'Either sign: a negative amount takes credit away.'))));
      }
    }

    function moveForm(kind, label, help) {
      const f = ui.form({
        submit: label,
        fields: [
          { name: 'amount_usd', label: `${label}: amount (USD)`, required: true, help, autocomplete: 'off' },
          { name: 'note', label: `${label}: note` },
        ],
        onSubmit: async (v) => {
          const a = await ctx.api.send('POST', `${base()}/${kind}`, { amount_usd: v.amount_usd, note: v.note });
          ui.toast(`${label} done: the balance is ${fmtUSD(a.balance_usd)}.`, 'ok');
          balances.reload();
          await show();
        },
      });
      return f;
    }

    if (subject.id) await show();
  },
};
