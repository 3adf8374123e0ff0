// Admin audit log: who changed what through the admin API (GET /admin/audit-log), filtered by
// actor, action, target, tenant and time; each entry opens with its before and after.

import { ensureStyles, jsonBlock } from './shared.js';

const names = ['actor', 'action', 'target', 'tenant_id', 'from', 'to'];

export const page = {
  id: 'audit-log',
  title: 'Admin audit log',
  area: 'audit-log',
  render: async (root, ctx) => {
    ensureStyles();
    const ui = ctx.ui;
    const el = ui.el;
    const query = {};
    for (const n of names) if (ctx.route.params[n]) query[n] = ctx.route.params[n];
    const fields = [
      { name: 'actor', label: 'Actor', value: query.actor, help: '"bootstrap" or an admin token id.' },
      { name: 'action', label: 'Action', value: query.action, help: 'Exact ("key.create") or a prefix ending in "." ("key.").' },
      { name: 'target', label: 'Target', value: query.target },
      { name: 'from', label: 'From', type: 'datetime', value: query.from },
      { name: 'to', label: 'To', type: 'datetime', value: query.to },
    ];
    if (!ctx.principal.tenant) fields.splice(3, 0, { name: 'tenant_id', label: 'Tenant', value: query.tenant_id });
    const filters = ui.form({
      class: 'form-grid', submit: 'Search', fields,
      onSubmit: async (v) => {
        for (const n of names) delete query[n];
        for (const n of names) if (v[n]) query[n] = v[n];
        // A bad filter is named next to its field: try it before redrawing the list.
        await ctx.api.get('/admin/audit-log', { ...query, limit: 1 });
        ctx.setParams(query);
        await list.reload();
      },
    });
    const list = ui.pagedTable({
      caption: 'Admin changes', empty: 'No change matches.',
      load: ({ limit, offset }) => ctx.api.get('/admin/audit-log', { ...query, limit, offset }),
      columns: [
        { label: 'When', render: (e) => ui.timeCell(e.at) },
        { label: 'Actor', render: (e) => el('code', { text: e.actor }) },
        { label: 'Action', render: (e) => e.action },
        { label: 'Target', class: 'wrap', render: (e) => e.target },
        { label: 'Tenant', render: (e) => e.tenant_id },
        { label: 'Change', render: (e) => ui.button('Before / after', () => show(e), { small: true, ariaLabel: `Before and after of ${e.action} ${e.target}` }) },
      ],
    });
    root.append(ui.section('Search', filters), list.element);

    function show(e) {
      ui.dialog({
        title: `${e.action} ${e.target}`, wide: true,
        body: el('div', {},
          ui.definitionList([['When', ui.timeCell(e.at)], ['Actor', e.actor], ['Tenant', e.tenant_id], ['Request id', e.request_id]]),
          el('div', { class: 'diff' },
            el('div', {}, el('h3', { text: 'Before' }), jsonBlock(ui, e.before)),
            el('div', {}, el('h3', { text: 'After' }), jsonBlock(ui, e.after)))),
      });
    }
  },
};
