// Helpers shared by the overview, quotas, pricing, providers, usage, credits and audit-log pages
// (not a page itself; not named _shared.js, since go:embed leaves out files starting with "_"):
// their stylesheet, number and money formats, and time-range inputs.

let styled = false;

/** ensureStyles links css/pages.css once (a stylesheet of this origin: the CSP allows it). */
export function ensureStyles() {
  if (styled || document.querySelector('link[data-pages-css]')) return;
  styled = true;
  const l = document.createElement('link');
  l.rel = 'stylesheet';
  l.href = new URL('../../css/pages.css', import.meta.url).pathname;
  l.setAttribute('data-pages-css', '');
  document.head.append(l);
}

const intFmt = new Intl.NumberFormat('en-US');

/** fmtInt shows an integer with thousands separators ('—' when missing). */
export function fmtInt(n) {
  if (n === undefined || n === null || n === '') return '—';
  return intFmt.format(Number(n));
}

/** fmtCompact shows 1234567 as 1.2M, for chart axes. */
export function fmtCompact(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 0 : 1) + 'k';
  return String(Math.round(n * 100) / 100);
}

/** fmtUSD shows a decimal USD string from the API exactly, with a dollar sign ('—' when none). */
export function fmtUSD(s) {
  if (s === undefined || s === null || s === '') return '—';
  const str = String(s);
  return str.startsWith('-') ? '-$' + str.slice(1) : '$' + str;
}

/** usdAxis formats a float dollar amount for a chart axis or a bar's title (display only). */
export function usdAxis(v) {
  if (v === 0) return '$0';
  if (Math.abs(v) < 0.01) return '$' + v.toPrecision(2);
  return '$' + fmtCompact(v);
}

/** statCard is one headline number. */
export function statCard(ui, label, value, bad = false) {
  return ui.el('div', { class: ['stat', bad && 'stat-bad'] },
    ui.el('span', { class: 'stat-label', text: label }), ui.el('span', { class: 'stat-value', text: value }));
}

/** isoOrEmpty turns a datetime-local value (local time) into ISO, or ''. */
export function isoOrEmpty(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? v : d.toISOString();
}

/** jsonBlock shows a JSON document (or '—') in a scrolling <pre>. */
export function jsonBlock(ui, v) {
  if (v === undefined || v === null) return ui.el('p', { class: 'muted', text: '—' });
  return ui.el('pre', { class: 'json', text: JSON.stringify(v, null, 2) });
}

/** segmented is a row of toggle buttons; onPick(value) runs when one is pressed. */
export function segmented(ui, label, options, current, onPick) {
  const box = ui.el('div', { class: 'segmented', role: 'group', 'aria-label': label });
  const btns = options.map(([value, text]) => {
    const b = ui.button(text, () => {
      for (const o of btns) o.setAttribute('aria-pressed', String(o === b));
      onPick(value);
    }, { small: true });
    b.setAttribute('aria-pressed', String(value === current));
    return b;
  });
  box.append(...btns);
  return box;
}

/** optional drops empty strings from a body (an empty price field means "not sent"). */
export function withoutEmpty(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v !== '' && v !== null && v !== undefined) out[k] = v;
  }
  return out;
}
