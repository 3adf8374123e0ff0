// Small SVG charts for the console: bars and lines over a time axis, drawn with createElementNS
// (no innerHTML, no inline style; colours come from classes in css/pages.css, so the dark theme
// applies). Each chart is an <svg role="img"> with a text summary for screen readers, and every
// bar or point has a <title> the browser shows on hover.

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) n.setAttribute(k, String(v));
  }
  for (const c of children) if (c) n.append(c);
  return n;
}

function title(text) {
  const t = svg('title');
  t.textContent = text;
  return t;
}

/** niceMax rounds a maximum up to 1, 2 or 5 times a power of ten (at least 1). */
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/**
 * timeChart draws series over the same x labels.
 * opts: {labels: [string] (one per point, shown thinned out), series: [{name, values: [number],
 * kind: 'bar'|'line', cls}], format: (number) → string for the axis and titles, label: the
 * chart's accessible name}. Bars of several series stand side by side in each slot.
 */
export function timeChart({ labels, series, format = String, label }) {
  const W = 640;
  const H = 220;
  const left = 56;
  const right = 8;
  const top = 10;
  const bottom = 28;
  const n = Math.max(labels.length, 1);
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const slot = plotW / n;
  const y = (v) => top + plotH - (v / max) * plotH;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label });
  const totals = series.map((s) => `${s.name}: ${format(s.values.reduce((a, b) => a + b, 0))} in total, at most ${format(Math.max(0, ...s.values))}`);
  const desc = svg('desc');
  desc.textContent = `${label}. ${labels.length} points from ${labels[0] || '—'} to ${labels[labels.length - 1] || '—'}. ${totals.join('; ')}.`;
  root.append(title(label), desc);
  // Grid and y axis: 0, half, max.
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    root.append(svg('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: 'chart-grid' }));
    const t = svg('text', { x: left - 6, y: y(v) + 4, class: 'chart-tick', 'text-anchor': 'end' });
    t.textContent = format(v);
    root.append(t);
  }
  // X labels, thinned to about eight.
  const every = Math.max(1, Math.ceil(n / 8));
  labels.forEach((l, i) => {
    if (i % every !== 0) return;
    const t = svg('text', { x: left + slot * i + slot / 2, y: H - 8, class: 'chart-tick', 'text-anchor': 'middle' });
    t.textContent = l;
    root.append(t);
  });
  const bars = series.filter((s) => s.kind !== 'line');
  const bw = Math.max(1, (slot * 0.8) / Math.max(bars.length, 1));
  bars.forEach((s, k) => {
    s.values.forEach((v, i) => {
      const x = left + slot * i + slot * 0.1 + bw * k;
      const h = Math.max(0, top + plotH - y(v));
      root.append(svg('rect', { x, y: y(v), width: bw, height: h, class: `chart-bar ${s.cls || ''}` }, title(`${labels[i]} — ${s.name}: ${format(v)}`)));
    });
  });
  series.filter((s) => s.kind === 'line').forEach((s) => {
    const pts = s.values.map((v, i) => `${left + slot * i + slot / 2},${y(v)}`);
    root.append(svg('polyline', { points: pts.join(' '), class: `chart-line ${s.cls || ''}`, fill: 'none' }));
    s.values.forEach((v, i) => {
      root.append(svg('circle', { cx: left + slot * i + slot / 2, cy: y(v), r: 2.5, class: `chart-dot ${s.cls || ''}` }, title(`${labels[i]} — ${s.name}: ${format(v)}`)));
    });
  });
  root.append(svg('line', { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: 'chart-axis' }));
  return root;
}

/** legend lists the series' names beside swatches of their classes. */
export function legend(series) {
  const ul = document.createElement('ul');
  ul.className = 'chart-legend';
  for (const s of series) {
    const li = document.createElement('li');
    const mark = s.kind === 'line'
      ? svg('circle', { cx: 5, cy: 5, r: 4, class: `chart-dot ${s.cls || ''}` })
      : svg('rect', { x: 0, y: 0, width: 10, height: 10, class: `chart-bar ${s.cls || ''}` });
    const sw = svg('svg', { viewBox: '0 0 10 10', width: 10, height: 10, 'aria-hidden': 'true' }, mark);
    li.append(sw, document.createTextNode(' ' + s.name));
    ul.append(li);
  }
  return ul;
}
