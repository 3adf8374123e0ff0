// Keys: list and filter API keys; create one (its plaintext shown once), change its name,
// models, limits, budgets and expiry, rotate it with a grace period, revoke it.

import { limitFields, limitsBody, limitsText } from '../limits.js';

const statusKind = { active: 'ok', expired: 'warn', revoked: 'bad' };

export const page = {
  id: 'keys',
  title: 'Keys',
  area: 'keys',
  render: async (root, ctx) => {
    const ui = ctx.ui;
    const el = ui.el;
    const scoped = !!ctx.principal.tenant;
    const writable = ctx.canWrite('keys');
    const p = ctx.route.params;

    const filters = ui.form({
      class: 'toolbar',
      submit: 'Filter',
      fields: [
        { name: 'name', label: 'Name contains', value: p.name },
        { name: 'prefix', label: 'Prefix', value: p.prefix },
        { name: 'user_id', label: 'User', value: p.user_id },
        scoped ? null : { name: 'tenant_id', label: 'Tenant', value: p.tenant_id },
        { name: 'status', label: 'Status', type: 'select', value: p.status || '',
          options: [{ value: '', label: 'Any' }, 'active', 'expired', 'revoked'] },
      ].filter(Boolean),
      onSubmit: async (v) => {
        Object.assign(query, v);
        ctx.setParams(query);
        await list.reload();
      },
    });
    const query = { name: p.name, prefix: p.prefix, user_id: p.user_id, tenant_id: scoped ? undefined : p.tenant_id, status: p.status };

    const columns = [
      { label: 'Name', render: (k) => k.name || el('span', { class: 'muted', text: '(no name)' }) },
      { label: 'Prefix', render: (k) => el('code', { text: k.prefix + '…' }) },
      { label: 'Status', render: (k) => ui.badge(k.status, statusKind[k.status] || 'muted') },
      { label: 'User', key: 'user_id' },
      { label: 'Tenant', key: 'tenant_id' },
      { label: 'Models', class: 'wrap', render: (k) => (k.models && k.models.length ? k.models.join(', ') : 'every model') },
      { label: 'Limits', class: 'wrap', render: (k) => limitsText(k.limits) },
      { label: 'Expires', render: (k) => ui.timeCell(k.expires_at) },
      { label: 'Created', render: (k) => ui.timeCell(k.created_at) },
    ];
    if (writable) {
      columns.splice(1, 0, { label: 'Actions', render: (k) => (k.status === 'revoked' ? '' : el('div', { class: 'row-actions' },
        ui.button('Edit', () => editKey(k), { small: true, ariaLabel: `Edit key ${k.name || k.prefix}` }),
        ui.button('Rotate', () => rotateKey(k), { small: true, ariaLabel: `Rotate key ${k.name || k.prefix}` }),
        ui.button('Revoke', () => revokeKey(k), { small: true, kind: 'danger', ariaLabel: `Revoke key ${k.name || k.prefix}` }))) });
    }
    const list = ui.pagedTable({
      columns, caption: 'API keys', empty: 'No keys match.',
      load: ({ limit, offset }) => ctx.api.get('/admin/keys', { ...query, limit, offset }),
    });

    const head = el('div', { class: 'toolbar' });
    if (writable) head.append(ui.button('New key', createKey, { kind: 'primary' }));
    root.append(head, ui.filters(filters, 'Filter'), list.element);

    function createKey() {
      const f = ui.form({
        submit: 'Create key',
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'user_id', label: 'User id', help: 'The user that owns the key; one that does not exist yet is created (with the tier below).' },
          { name: 'tier', label: 'Tier of a new user' },
          scoped ? null : { name: 'tenant_id', label: 'Tenant', help: 'Without a user: the tenant that owns the key (default: the default tenant).' },
          { name: 'models', label: 'Models', type: 'list', help: 'Comma-separated public model names; empty: every model.' },
          { name: 'expires_at', label: 'Expires at', type: 'datetime' },
          ...limitFields(null),
        ].filter(Boolean),
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          const body = { name: v.name, user_id: v.user_id || undefined, tier: v.tier || undefined,
            tenant_id: v.tenant_id || undefined, models: v.models || undefined, expires_at: v.expires_at || undefined,
            limits: limitsBody(v) || undefined };
          const k = await ctx.api.send('POST', '/admin/keys', body);
          d.close();
          await ui.showSecret({ title: `Key ${k.name || k.prefix} created`, secret: k.key,
            note: 'This is the only time the key is shown: the gateway keeps only its hash. Copy it now.' });
          k.key = '';
          ui.toast('Key created.', 'ok');
          list.reload();
        },
      });
      const d = ui.dialog({ title: 'New API key', body: f, wide: true, actions: null });
      f.input('name').focus();
    }

    function editKey(k) {
      const f = ui.form({
        submit: 'Save',
        fields: [
          { name: 'name', label: 'Name', value: k.name },
          { name: 'models', label: 'Models', type: 'list', value: k.models, help: 'Comma-separated; empty: every model.' },
          { name: 'expires_at', label: 'Expires at', type: 'datetime', value: k.expires_at, help: 'Empty: never.' },
          ...limitFields(k.limits),
        ],
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          await ctx.api.send('PATCH', '/admin/keys/' + encodeURIComponent(k.id),
            { name: v.name, models: v.models || [], expires_at: v.expires_at, limits: limitsBody(v) });
          d.close();
          ui.toast('Key saved.', 'ok');
          list.reload();
        },
      });
      const d = ui.dialog({ title: `Edit key ${k.name || k.prefix}`, body: f, wide: true, actions: null });
      f.input('name').focus();
    }

    function rotateKey(k) {
      const f = ui.form({
        submit: 'Rotate',
        fields: [{ name: 'grace_hours', label: 'Grace period (hours)', type: 'number', value: 24, min: '0', max: '720', step: 'any',
          help: 'How long the old secret keeps working beside the new one (0: it stops at once; at most 30 days).' }],
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          const hours = v.grace_hours === null ? 24 : v.grace_hours;
          let r;
          try {
            r = await ctx.api.send('POST', '/admin/keys/' + encodeURIComponent(k.id) + '/rotate', { grace_seconds: Math.round(hours * 3600) });
          } catch (err) {
            if (err.param === 'grace_seconds') err.param = 'grace_hours';
            throw err;
          }
          d.close();
          const until = r.previous_key_expires_at ? ' The old secret works until ' + ui.fmtTime(r.previous_key_expires_at) + '.' : ' The old secret no longer works.';
          await ui.showSecret({ title: `Key ${k.name || k.prefix} rotated`, secret: r.key,
            note: 'This is the only time the new key is shown. Copy it now.' + until });
          r.key = '';
          list.reload();
        },
      });
      const d = ui.dialog({ title: `Rotate key ${k.name || k.prefix}`, body: f, actions: null });
    }

    async function revokeKey(k) {
      const ok = await ui.confirm({ title: 'Revoke key', danger: true, confirmLabel: 'Revoke',
        message: `Revoke key ${k.name || ''} (${k.prefix}…)? Requests with it are refused at once, on every replica; this cannot be undone.` });
      if (!ok) return;
      try {
        await ctx.api.send('DELETE', '/admin/keys/' + encodeURIComponent(k.id));
        ui.toast('Key revoked.', 'ok');
        list.reload();
      } catch (err) {
        ui.toast(err.message, 'bad');
      }
    }
  },
};
