// Providers: the deployments of the routing table in use (GET /admin/deployments) with this
// replica's health: breaker state, availability, mean time to first token, successes and failures,
// the last failure. An unscoped admin enables, disables and re-weights a deployment
// (PATCH /admin/deployments/{id}), or puts it back to the config file (DELETE).

import { ensureStyles, fmtInt } from './shared.js';
import { breakerBadge } from './overview.js';

/** depPath is the API path of a deployment (its id may contain "/"). */
const depPath = (id) => '/admin/deployments/' + id.split('/').map(encodeURIComponent).join('/');

export const page = {
  id: 'providers',
  title: 'Providers',
  area: 'deployments',
  render: async (root, ctx) => {
    ensureStyles();
    const ui = ctx.ui;
    const el = ui.el;
    const writable = ctx.canWrite('deployments', { global: true });
    const frame = el('div');
    root.append(ui.toolbar(ui.button('Refresh', () => draw()),
      el('span', { class: 'muted', text: 'Health is this replica\'s view; enable, disable and weight apply to every replica.' })), frame);

    async function draw() {
      let res;
      try {
        res = await ctx.api.get('/admin/deployments');
      } catch (err) {
        ui.clear(frame).append(ui.errorBox(err.message));
        return;
      }
      // Health comes right after the deployment's name, so a laptop's width shows it without
      // scrolling the table sideways; what the deployment is (models, upstream) sits under its id.
      const columns = [
        { label: 'Deployment', class: 'wrap', render: (d) => el('div', {},
          el('code', { text: d.id }),
          el('div', { class: 'muted dep-sub', text: `${(d.models || []).join(', ')} → ${d.provider} / ${d.upstream_model}` })) },
        { label: 'State', render: (d) => (d.enabled ? ui.badge('enabled', 'ok') : ui.badge('disabled', 'bad')) },
        { label: 'Breaker', render: (d) => breakerBadge(ui, d) },
        { label: 'TTFT', class: 'num', render: (d) => (d.health && d.health.ttft_ms_avg ? `${Math.round(d.health.ttft_ms_avg)} ms` : '—') },
        { label: 'OK / failed', class: 'num', render: (d) => (d.health ? `${fmtInt(d.health.succeeded)} / ${fmtInt(d.health.failed)}` : '—') },
        { label: 'Last failure', class: 'wrap', render: (d) => (d.health && d.health.last_failure
          ? el('span', {}, ui.timeCell(d.health.last_failure.at), ' ', d.health.last_failure.reason) : '—') },
        { label: 'Priority', class: 'num', render: (d) => String(d.priority) },
        { label: 'Weight', class: 'num', render: (d) => (d.weight === d.file_weight ? String(d.weight) : `${d.weight} (file ${d.file_weight})`) },
        { label: 'Override', class: 'wrap', render: (d) => (d.override ? el('span', {}, 'by ', el('code', { text: d.override.updated_by }), ' ', ui.timeCell(d.override.updated_at)) : '—') },
      ];
      if (writable) {
        columns.push({ label: 'Actions', render: (d) => el('div', { class: 'row-actions' },
          d.enabled
            ? ui.button('Disable', () => toggle(d, false), { small: true, kind: 'danger', ariaLabel: `Disable ${d.id}` })
            : ui.button('Enable', () => toggle(d, true), { small: true, ariaLabel: `Enable ${d.id}` }),
          ui.button('Weight', () => weight(d), { small: true, ariaLabel: `Change the weight of ${d.id}` }),
          d.override && ui.button('Reset', () => reset(d), { small: true, ariaLabel: `Put ${d.id} back to the config file` })) });
      }
      ui.clear(frame).append(ui.table({ caption: 'Deployments', empty: 'No deployments are configured.', columns, rows: res.data || [] }));
    }

    async function toggle(d, enabled) {
      if (!enabled && !(await ui.confirm({ title: 'Disable ' + d.id + '?', message: 'Requests stop going to this deployment on every replica; a model with no other deployment answers 503 until it is enabled again.', confirmLabel: 'Disable', danger: true }))) return;
      try {
        await ctx.api.send('PATCH', depPath(d.id), { enabled });
        ui.toast(`${d.id} ${enabled ? 'enabled' : 'disabled'}.`, 'ok');
      } catch (err) {
        ui.toast(err.message, 'bad');
      }
      draw();
    }

    function weight(d) {
      const f = ui.form({
        submit: 'Save weight',
        fields: [{ name: 'weight', label: 'Weight', type: 'number', value: d.weight, min: 1, step: 1, required: true,
          help: `The share of traffic among deployments of the same priority; the config file says ${d.file_weight}.` }],
        onCancel: () => dlg.close(),
        onSubmit: async (v) => {
          await ctx.api.send('PATCH', depPath(d.id), { weight: v.weight });
          dlg.close();
          ui.toast(`Weight of ${d.id} set.`, 'ok');
          draw();
        },
      });
      const dlg = ui.dialog({ title: 'Weight of ' + d.id, body: f, actions: null });
      f.input('weight').focus();
    }

    async function reset(d) {
      try {
        await ctx.api.send('DELETE', depPath(d.id));
        ui.toast(`${d.id} follows the config file again.`, 'ok');
      } catch (err) {
        ui.toast(err.message, 'bad');
      }
      draw();
    }

    await draw();
  },
};
