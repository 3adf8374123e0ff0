// Pricing: the prices in force with their versions (GET /admin/pricing), a model's history
// (GET /admin/pricing/{model}), and a new price for a model (PUT /admin/pricing/{model}), effective
// immediately: the answer's version is shown, and usage records costed from then on carry it.
// Prices are shared by every tenant, so only an unscoped admin or billing token edits them.

import { ensureStyles, fmtUSD, withoutEmpty } from './shared.js';

// The token and unit prices of the edit form, as the API names them.
const priceFields = [
  ['input_per_million', 'Input, USD per 1M tokens'],
  ['output_per_million', 'Output, USD per 1M tokens'],
  ['cached_input_per_million', 'Cached input, USD per 1M tokens', 'Empty or 0: the input price.'],
  ['reasoning_per_million', 'Reasoning, USD per 1M tokens', 'Empty or 0: the output price.'],
  ['per_request', 'USD per request', 'Added to the rest; empty: none.'],
  ['audio_per_second', 'USD per second of input audio'],
  ['characters_per_million', 'USD per 1M characters of speech input'],
];

/** nonZero keeps a price only when set (the API answers "0" for unset unit prices). */
const nonZero = (v) => (v && v !== '0' ? v : '');

export const page = {
  id: 'pricing',
  title: 'Pricing',
  area: 'pricing',
  render: async (root, ctx) => {
    ensureStyles();
    const ui = ctx.ui;
    const el = ui.el;
    const writable = ctx.canWrite('pricing', { global: true });
    const columns = [
      { label: 'Model', render: (p) => el('code', { text: p.model }) },
      { label: 'Input / 1M', class: 'num', render: (p) => fmtUSD(p.input_per_million) },
      { label: 'Output / 1M', class: 'num', render: (p) => fmtUSD(p.output_per_million) },
      { label: 'Cached / 1M', class: 'num', render: (p) => fmtUSD(nonZero(p.cached_input_per_million)) },
      { label: 'Reasoning / 1M', class: 'num', render: (p) => fmtUSD(nonZero(p.reasoning_per_million)) },
      { label: 'Units', class: 'wrap', render: (p) => unitsText(p) },
      { label: 'Version', render: (p) => el('code', { text: p.version }) },
      { label: 'Effective from', render: (p) => ui.timeCell(p.effective_from) },
    ];
    columns.push({ label: 'Actions', render: (p) => el('div', { class: 'row-actions' },
      ui.button('History', () => history(p.model), { small: true, ariaLabel: `Price history of ${p.model}` }),
      writable && ui.button('Edit', () => edit(p.model, p), { small: true, ariaLabel: `Edit the price of ${p.model}` })) });
    // 200 a page: every model of a usual price table on one page, found with the browser's search.
    const list = ui.pagedTable({ columns, size: 200, caption: 'Prices in force', empty: 'No prices yet.',
      load: ({ limit, offset }) => ctx.api.get('/admin/pricing', { limit, offset }) });
    const head = ui.toolbar();
    if (writable) head.append(ui.button('Price a model', () => edit('', null), { kind: 'primary' }));
    head.append(el('span', { class: 'muted', text: 'A change makes a new version, in force at once on every replica; older records keep the version they were costed with.' }));
    const result = el('div', { 'aria-live': 'polite' });
    root.append(head, result, list.element);

    function unitsText(p) {
      const parts = [];
      const img = p.image || {};
      for (const [k, v] of Object.entries(img)) parts.push(`image ${k}: ${fmtUSD(v)}`);
      if (nonZero(p.per_request)) parts.push(`per request ${fmtUSD(p.per_request)}`);
      if (nonZero(p.audio_per_second)) parts.push(`audio/s ${fmtUSD(p.audio_per_second)}`);
      if (nonZero(p.characters_per_million)) parts.push(`1M chars ${fmtUSD(p.characters_per_million)}`);
      return parts.join('; ');
    }

    async function history(model) {
      const holder = el('div', {}, el('p', { class: 'muted', text: 'Loading…' }));
      ui.dialog({ title: 'Price history of ' + model, body: holder, wide: true });
      try {
        const res = await ctx.api.get('/admin/pricing/' + model.split('/').map(encodeURIComponent).join('/'));
        ui.clear(holder).append(ui.table({ caption: 'Versions, newest first', rows: res.data, columns: [
          { label: 'Version', render: (p) => el('code', { text: p.version }) },
          { label: 'Effective from', render: (p) => ui.timeCell(p.effective_from) },
          { label: 'Input / 1M', class: 'num', render: (p) => fmtUSD(p.input_per_million) },
          { label: 'Output / 1M', class: 'num', render: (p) => fmtUSD(p.output_per_million) },
          { label: 'Units', class: 'wrap', render: (p) => unitsText(p) },
        ] }));
      } catch (err) {
        ui.clear(holder).append(ui.errorBox(err.message));
      }
    }

    function edit(model, current) {
      const fields = [];
      if (!model) fields.push({ name: 'model', label: 'Model', required: true, help: 'The public model name (or an upstream model name); may contain "/".' });
      for (const [name, label, help] of priceFields) {
        fields.push({ name, label, value: current ? nonZero(current[name]) : '', help, placeholder: '0.00', autocomplete: 'off' });
      }
      const f = ui.form({
        submit: 'Save new version', fields,
        onCancel: () => d.close(),
        onSubmit: async (v) => {
          const target = model || v.model;
          if (!target) {
            f.showError('model', 'Name the model.');
            return;
          }
          const body = withoutEmpty(Object.fromEntries(priceFields.map(([n]) => [n, v[n]])));
          if (current && current.image && Object.keys(current.image).length) body.image = current.image;
          const saved = await ctx.api.send('PUT', '/admin/pricing/' + target.split('/').map(encodeURIComponent).join('/'), body);
          d.close();
          ui.toast(`New price of ${saved.model}: version ${saved.version}.`, 'ok');
          ui.clear(result).append(el('p', { class: 'notice', 'data-price-version': saved.version },
            'Saved ', el('code', { text: saved.model }), ': version ', el('code', { text: saved.version }),
            ', in force from ', ui.timeCell(saved.effective_from), '. ',
            ui.button('History', () => history(saved.model), { small: true, ariaLabel: `Price history of ${saved.model}` })));
          list.reload();
        },
      });
      const d = ui.dialog({ title: model ? 'New price of ' + model : 'Price a model', body: f, wide: true, actions: null });
      (f.input('model') || f.input('input_per_million')).focus();
    }
  },
};
