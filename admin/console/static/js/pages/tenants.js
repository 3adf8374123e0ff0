// Tenants: list and search; create, rename, set models and limits, delete (a tenant with live
// users or keys is refused by the API, which says why). Tenants are shared by every tenant's
// admins, so only an unscoped token changes them.

import { limitFields, limitsBody, limitsText } from '../limits.js';

export const page = {
  id: 'tenants',
  title: 'Tenants',
  area: 'tenants',
  render: async (root, ctx) => {
    const ui = ctx.ui;
    const el = ui.el;
    const writable = ctx.canWrite('tenants', { global: true });
    const query = { q: ctx.route.params.q, include_deleted: ctx.route.params.include_deleted };

    const filters = ui.form({
      class: 'toolbar', submit: 'Search',
      fields: [
        { name: 'q', label: 'Id or name contains', value: query.q },
        { name: 'include_deleted', label: 'Include deleted', type: 'checkbox', value: query.include_deleted === 'true' },
      ],
      onSubmit: async (v) => {
        query.q = v.q;
        query.include_deleted = v.include_deleted ? 'true' : undefined;
        ctx.setParams(query);
        await list.reload();
      },
    });
    const columns = [
      { label: 'Id', render: (t) => el('code', { text: t.id }) },
      { label: 'Name', key: 'name' },
      { label: 'Status', render: (t) => (t.deleted_at ? ui.badge('deleted', 'bad') : ui.badge('live', 'ok')) },
      { label: 'Models', class: 'wrap', render: (t) => (t.models && t.models.length ? t.models.join(', ') : 'every model') },
      { label: 'Limits', class: 'wrap', render: (t) => limitsText(t.limits) },
      { label: 'Created', render: (t) => ui.timeCell(t.created_at) },
      { label: 'Keys', render: (t) => el('a', { href: '#/keys?tenant_id=' + encodeURIComponent(t.id), text: 'keys' }) },
    ];
    if (writable) {
      columns.splice(1, 0, { label: 'Actions', render: (t) => (t.deleted_at ? '' : el('div', { class: 'row-actions' },
        ui.button('Edit', () => edit(t), { small: true, ariaLabel: `Edit tenant ${t.id}` }),
        t.id === 'default' ? null : ui.button('Delete', () => remove(t), { small: true, kind: 'danger', ariaLabel: `Delete tenant ${t.id}` }))) });
    }
    const list = ui.pagedTable({ columns, caption: 'Tenants', empty: 'No tenants match.',
      load: ({ limit, offset }) => ctx.api.get('/admin/tenants', { ...query, limit, offset }) });

    const head = el('div', { class: 'toolbar' });
    if (writable) head.append(ui.button('New tenant', create, { kind: 'primary' }));
    root.append(head, ui.filters(filters, 'Search'), list.element);

    function create() {
      const f = ui.form({
        submit: 'Create tenant',
        fields: [
          { name: 'id', label: 'Id', required: true, help: 'Letters, digits, dot, dash, underscore; it cannot change later.' },
          { name: 'name', label: 'Name' },
          { name: 'models', label: 'Models', type: 'list', help: 'Comma-separated public model names; empty: every model.' },
          ...limitFields(null),
        ],
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          await ctx.api.send('POST', '/admin/tenants', { id: v.id, name: v.name, models: v.models || undefined, limits: limitsBody(v) || undefined });
          d.close();
          ui.toast('Tenant created.', 'ok');
          list.reload();
        },
      });
      const d = ui.dialog({ title: 'New tenant', body: f, wide: true, actions: null });
      f.input('id').focus();
    }

    function edit(t) {
      const f = ui.form({
        submit: 'Save',
        fields: [
          { name: 'name', label: 'Name', value: t.name },
          { name: 'models', label: 'Models', type: 'list', value: t.models, help: 'Comma-separated; empty: every model.' },
          ...limitFields(t.limits),
        ],
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          await ctx.api.send('PATCH', '/admin/tenants/' + encodeURIComponent(t.id), { name: v.name, models: v.models, limits: limitsBody(v) });
          d.close();
          ui.toast('Tenant saved.', 'ok');
          list.reload();
        },
      });
      const d = ui.dialog({ title: `Edit tenant ${t.id}`, body: f, wide: true, actions: null });
      f.input('name').focus();
    }

    async function remove(t) {
      const ok = await ui.confirm({ title: 'Delete tenant', danger: true, confirmLabel: 'Delete',
        message: `Delete tenant ${t.id}? Its users must be deleted and its keys revoked first.` });
      if (!ok) return;
      try {
        await ctx.api.send('DELETE', '/admin/tenants/' + encodeURIComponent(t.id));
        ui.toast('Tenant deleted.', 'ok');
        list.reload();
      } catch (err) {
        ui.toast(err.message, 'bad');
      }
    }
  },
};
