// Admin tokens: list; create one with a role, an optional tenant scope and expiry (its plaintext
// shown once); revoke (which ends its console sessions too).

export const page = {
  id: 'tokens',
  title: 'Admin tokens',
  area: 'tokens',
  render: async (root, ctx) => {
    const ui = ctx.ui;
    const el = ui.el;
    const scoped = !!ctx.principal.tenant;
    const writable = ctx.canWrite('tokens');
    const p = ctx.route.params;
    const query = { name: p.name, role: p.role, tenant_id: scoped ? undefined : p.tenant_id };
    const roles = [{ value: '', label: 'Any' }, 'admin', 'viewer', 'billing'];

    const filters = ui.form({
      class: 'toolbar', submit: 'Filter',
      fields: [
        { name: 'name', label: 'Name contains', value: query.name },
        { name: 'role', label: 'Role', type: 'select', value: query.role || '', options: roles },
        scoped ? null : { name: 'tenant_id', label: 'Tenant', value: query.tenant_id },
      ].filter(Boolean),
      onSubmit: async (v) => {
        Object.assign(query, v);
        ctx.setParams(query);
        await list.reload();
      },
    });
    const status = (t) => {
      if (t.revoked_at) return ui.badge('revoked', 'bad');
      if (t.expires_at && new Date(t.expires_at) <= new Date()) return ui.badge('expired', 'warn');
      return ui.badge('active', 'ok');
    };
    const columns = [
      { label: 'Name', key: 'name' },
      { label: 'Prefix', render: (t) => el('code', { text: t.prefix + '…' }) },
      { label: 'Role', key: 'role' },
      { label: 'Tenant', render: (t) => t.tenant_id || 'every tenant' },
      { label: 'Status', render: status },
      { label: 'Expires', render: (t) => ui.timeCell(t.expires_at) },
      { label: 'Last used', render: (t) => ui.timeCell(t.last_used_at) },
      { label: 'Made by', key: 'created_by' },
    ];
    if (writable) {
      columns.splice(1, 0, { label: 'Actions', render: (t) => (t.revoked_at ? '' :
        ui.button('Revoke', () => revoke(t), { small: true, kind: 'danger', ariaLabel: `Revoke token ${t.name}` })) });
    }
    const list = ui.pagedTable({ columns, caption: 'Admin tokens', empty: 'No tokens match.',
      load: ({ limit, offset }) => ctx.api.get('/admin/tokens', { ...query, limit, offset }) });

    const head = el('div', { class: 'toolbar' });
    if (writable) head.append(ui.button('New token', create, { kind: 'primary' }));
    root.append(head, ui.filters(filters, 'Filter'), list.element);

    function create() {
      const f = ui.form({
        submit: 'Create token',
        fields: [
          { name: 'name', label: 'Name', required: true },
          { name: 'role', label: 'Role', type: 'select', value: 'viewer', options: ['admin', 'viewer', 'billing'],
            help: 'admin: everything; viewer: reads only; billing: pricing, usage, billing and credits.' },
          scoped ? null : { name: 'tenant_id', label: 'Tenant scope', help: 'Empty: every tenant.' },
          { name: 'expires_at', label: 'Expires at', type: 'datetime', help: 'Empty: never.' },
        ].filter(Boolean),
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          const t = await ctx.api.send('POST', '/admin/tokens', { name: v.name, role: v.role, tenant_id: v.tenant_id || undefined,
            expires_at: v.expires_at || undefined });
          d.close();
          await ui.showSecret({ title: `Token ${t.name} created`, secret: t.token,
            note: 'This is the only time the token is shown: the gateway keeps only its hash. Copy it now.' });
          t.token = '';
          list.reload();
        },
      });
      const d = ui.dialog({ title: 'New admin token', body: f, wide: true, actions: null });
      f.input('name').focus();
    }

    async function revoke(t) {
      const ok = await ui.confirm({ title: 'Revoke token', danger: true, confirmLabel: 'Revoke',
        message: `Revoke admin token ${t.name} (${t.prefix}…)? Its calls and console sessions stop at once.` });
      if (!ok) return;
      try {
        await ctx.api.send('DELETE', '/admin/tokens/' + encodeURIComponent(t.id));
        ui.toast('Token revoked.', 'ok');
        list.reload();
      } catch (err) {
        ui.toast(err.message, 'bad');
      }
    }
  },
};
