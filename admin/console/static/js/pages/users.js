// Users: list and search; create, change tier, external id and email, delete (which revokes the
// user's keys).

export const page = {
  id: 'users',
  title: 'Users',
  area: 'users',
  render: async (root, ctx) => {
    const ui = ctx.ui;
    const el = ui.el;
    const scoped = !!ctx.principal.tenant;
    const writable = ctx.canWrite('users');
    const p = ctx.route.params;
    const query = { q: p.q, tier: p.tier, tenant_id: scoped ? undefined : p.tenant_id, include_deleted: p.include_deleted };

    const filters = ui.form({
      class: 'toolbar', submit: 'Search',
      fields: [
        { name: 'q', label: 'Id, external id or email contains', value: query.q },
        { name: 'tier', label: 'Tier', value: query.tier },
        scoped ? null : { name: 'tenant_id', label: 'Tenant', value: query.tenant_id },
        { name: 'include_deleted', label: 'Include deleted', type: 'checkbox', value: query.include_deleted === 'true' },
      ].filter(Boolean),
      onSubmit: async (v) => {
        Object.assign(query, v, { include_deleted: v.include_deleted ? 'true' : undefined });
        ctx.setParams(query);
        await list.reload();
      },
    });
    const columns = [
      { label: 'Id', render: (u) => el('code', { text: u.id }) },
      { label: 'Tenant', key: 'tenant_id' },
      { label: 'Tier', key: 'tier' },
      { label: 'External id', key: 'external_id' },
      { label: 'Email', key: 'email' },
      { label: 'Status', render: (u) => (u.deleted_at ? ui.badge('deleted', 'bad') : ui.badge('live', 'ok')) },
      { label: 'Created', render: (u) => ui.timeCell(u.created_at) },
      { label: 'Keys', render: (u) => el('a', { href: '#/keys?user_id=' + encodeURIComponent(u.id), text: 'keys' }) },
    ];
    if (writable) {
      columns.splice(1, 0, { label: 'Actions', render: (u) => (u.deleted_at ? '' : el('div', { class: 'row-actions' },
        ui.button('Edit', () => edit(u), { small: true, ariaLabel: `Edit user ${u.id}` }),
        ui.button('Delete', () => remove(u), { small: true, kind: 'danger', ariaLabel: `Delete user ${u.id}` }))) });
    }
    const list = ui.pagedTable({ columns, caption: 'Users', empty: 'No users match.',
      load: ({ limit, offset }) => ctx.api.get('/admin/users', { ...query, limit, offset }) });

    const head = el('div', { class: 'toolbar' });
    if (writable) head.append(ui.button('New user', create, { kind: 'primary' }));
    root.append(head, ui.filters(filters, 'Search'), list.element);

    function create() {
      const f = ui.form({
        submit: 'Create user',
        fields: [
          { name: 'id', label: 'Id', required: true },
          scoped ? null : { name: 'tenant_id', label: 'Tenant', help: 'Default: the default tenant.' },
          { name: 'tier', label: 'Tier', help: 'A tier of the quota configuration; default: the default tier.' },
          { name: 'external_id', label: 'External id' },
          { name: 'email', label: 'Email' },
        ].filter(Boolean),
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          await ctx.api.send('POST', '/admin/users', { id: v.id, tenant_id: v.tenant_id || undefined, tier: v.tier || undefined,
            external_id: v.external_id || undefined, email: v.email || undefined });
          d.close();
          ui.toast('User created.', 'ok');
          list.reload();
        },
      });
      const d = ui.dialog({ title: 'New user', body: f, wide: true, actions: null });
      f.input('id').focus();
    }

    function edit(u) {
      const f = ui.form({
        submit: 'Save',
        fields: [
          { name: 'tier', label: 'Tier', value: u.tier },
          { name: 'external_id', label: 'External id', value: u.external_id },
          { name: 'email', label: 'Email', value: u.email },
        ],
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          await ctx.api.send('PATCH', '/admin/users/' + encodeURIComponent(u.id), { tier: v.tier, external_id: v.external_id, email: v.email });
          d.close();
          ui.toast('User saved.', 'ok');
          list.reload();
        },
      });
      const d = ui.dialog({ title: `Edit user ${u.id}`, body: f, wide: true, actions: null });
      f.input('tier').focus();
    }

    async function remove(u) {
      const ok = await ui.confirm({ title: 'Delete user', danger: true, confirmLabel: 'Delete',
        message: `Delete user ${u.id}? Its keys are revoked at once.` });
      if (!ok) return;
      try {
        await ctx.api.send('DELETE', '/admin/users/' + encodeURIComponent(u.id));
        ui.toast('User deleted.', 'ok');
        list.reload();
      } catch (err) {
        ui.toast(err.message, 'bad');
      }
    }
  },
};
