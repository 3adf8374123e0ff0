// DOM helpers of the console (ctx.ui). Everything is built with createElement and textContent:
// no innerHTML anywhere, so a value from the API can never become markup. No inline styles either
// (the CSP forbids them): looks come from classes in css/console.css.

import { ApiError } from './api.js';

let uid = 0;
/** nextId returns a fresh element id with a prefix, for label/aria links. */
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * el(tag, attrs, ...children) builds an element. attrs: class, text (textContent), on ({click: fn}),
 * and any other attribute (true sets it empty, false/null/undefined leaves it out). children:
 * nodes, strings (as text), arrays of them; null and false are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = tag === 'svg' || (attrs && attrs.svg) ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false || k === 'svg') continue;
    if (k === 'text') node.textContent = String(v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (k === 'class') node.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'style') throw new Error('console: inline styles are forbidden by the CSP; use a class');
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** clear empties a node. */
export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** fmtTime shows an ISO time as local 'YYYY-MM-DD HH:MM', or '—'. */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** timeCell is a <time> element with the full ISO time as its title. */
export function timeCell(iso) {
  if (!iso) return '—';
  return el('time', { datetime: iso, title: iso, text: fmtTime(iso) });
}

/** badge is a small label; kind is ok, warn, bad or muted. */
export function badge(text, kind = 'muted') {
  return el('span', { class: `badge badge-${kind}`, text });
}

/** section is a titled block of a page. */
export function section(title, ...children) {
  const id = nextId('sec');
  return el('section', { class: 'card', 'aria-labelledby': id }, el('h2', { id, text: title }), ...children);
}

/** filters wraps a filter form in a disclosure, open on a wide screen and folded on a phone. */
export function filters(form, title = 'Filter') {
  return el('details', { class: 'card filters', open: window.matchMedia('(min-width: 761px)').matches },
    el('summary', { text: title }), form);
}

/** toolbar lays controls out in a row that wraps on a phone. */
export function toolbar(...children) {
  return el('div', { class: 'toolbar' }, ...children);
}

/** button: label, onClick, options {kind: 'primary'|'danger'|'', title, type}. */
export function button(label, onClick, opts = {}) {
  return el('button', { type: opts.type || 'button', class: ['btn', opts.kind && `btn-${opts.kind}`, opts.small && 'btn-small'],
    title: opts.title, 'aria-label': opts.ariaLabel, on: onClick ? { click: onClick } : undefined, text: label });
}

/** errorBox is a visible, announced error message. */
export function errorBox(message) {
  return el('p', { class: 'error-box', role: 'alert', text: message });
}

/**
 * table({columns, rows, empty, caption}) is a plain table in a horizontally scrolling frame.
 * columns: [{label, key, render(row) → node|string, class}].
 */
export function table({ columns, rows, empty = 'Nothing here yet.', caption }) {
  const t = el('table', { class: 'data' });
  if (caption) t.append(el('caption', { class: 'visually-hidden', text: caption }));
  t.append(el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', class: c.class, text: c.label })))));
  const body = el('tbody');
  if (!rows || rows.length === 0) {
    body.append(el('tr', {}, el('td', { colspan: String(columns.length), class: 'empty', text: empty })));
  }
  for (const r of rows || []) {
    body.append(el('tr', {}, columns.map((c) => {
      const v = c.render ? c.render(r) : r[c.key];
      return el('td', { class: c.class, 'data-label': c.label }, v === undefined || v === null || v === '' ? '—' : v);
    })));
  }
  t.append(body);
  return el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption || 'Table' }, t);
}

/**
 * pagedTable({columns, load, size, caption, empty}) is a table over an admin list endpoint:
 * load({limit, offset}) answers the API's list body ({data, has_more, next_offset}). Returns
 * {element, reload()}; reload() starts again at the first page.
 */
export function pagedTable({ columns, load, size = 50, caption, empty }) {
  const holder = el('div', { class: 'paged' });
  let offset = 0;
  const status = el('span', { class: 'page-status', 'aria-live': 'polite' });
  const prev = button('Previous', () => { offset = Math.max(0, offset - size); draw(); }, { small: true });
  const next = button('Next', () => { offset += size; draw(); }, { small: true });
  const frame = el('div');
  holder.append(frame, el('div', { class: 'pager' }, prev, status, next));
  async function draw() {
    prev.disabled = true;
    next.disabled = true;
    status.textContent = 'Loading…';
    try {
      const res = await load({ limit: size, offset });
      const rows = (res && res.data) || [];
      clear(frame).append(table({ columns, rows, caption, empty }));
      status.textContent = rows.length ? `${offset + 1}–${offset + rows.length}` : '';
      prev.disabled = offset === 0;
      next.disabled = !(res && res.has_more);
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      clear(frame).append(errorBox(err.message || String(err)));
      status.textContent = '';
    }
  }
  draw();
  return { element: holder, reload: () => { offset = 0; return draw(); } };
}

function fieldValue(f, input) {
  switch (f.type) {
    case 'checkbox': return input.checked;
    case 'number': return input.value.trim() === '' ? null : Number(input.value);
    case 'datetime': return input.value ? new Date(input.value).toISOString() : null;
    case 'list': {
      const items = input.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
      return items.length ? items : null;
    }
    default: return f.trim === false ? input.value : input.value.trim();
  }
}

/** toLocalInput turns an ISO time into the value of a datetime-local input. */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * form({fields, submit, onSubmit, onCancel, cancel}) builds a form whose fields are labelled and
 * whose errors are announced. field: {name, label, type ('text', 'password', 'number', 'select',
 * 'textarea', 'checkbox', 'datetime', 'list'), value, options ([{value, label}] or strings),
 * required, placeholder, help, min, max, step, autocomplete}. onSubmit(values) may throw an
 * ApiError: its message is shown next to the field its `param` names (the field of that name, or
 * of its first part: 'limits.rpm' → 'limits.rpm' or 'limits'), or above the buttons otherwise.
 * values maps each field name to its value ('number' → number or null, 'datetime' → ISO or null,
 * 'list' → array or null, 'checkbox' → boolean).
 */
export function form({ fields, submit = 'Save', onSubmit, onCancel, cancel = 'Cancel', class: cls }) {
  const f = el('form', { class: ['form', cls], novalidate: true });
  const inputs = new Map();
  const errors = new Map();
  for (const fd of fields) {
    const id = nextId('field');
    const errId = id + '-err';
    const helpId = fd.help ? id + '-help' : null;
    let input;
    const common = { id, name: fd.name, required: fd.required, 'aria-describedby': [helpId, errId].filter(Boolean).join(' ') };
    if (fd.type === 'select') {
      input = el('select', common, (fd.options || []).map((o) => {
        const opt = typeof o === 'string' ? { value: o, label: o } : o;
        return el('option', { value: opt.value, selected: String(fd.value ?? '') === String(opt.value), text: opt.label });
      }));
    } else if (fd.type === 'textarea') {
      input = el('textarea', { ...common, rows: fd.rows || 3, placeholder: fd.placeholder });
      input.value = fd.value ?? '';
    } else if (fd.type === 'checkbox') {
      input = el('input', { ...common, type: 'checkbox' });
      input.checked = !!fd.value;
    } else {
      const type = { number: 'number', datetime: 'datetime-local', password: 'password' }[fd.type] || 'text';
      input = el('input', { ...common, type, placeholder: fd.placeholder, min: fd.min, max: fd.max, step: fd.step,
        autocomplete: fd.autocomplete || (fd.type === 'password' ? 'off' : undefined), spellcheck: fd.type === 'password' ? 'false' : undefined,
        inputmode: fd.type === 'number' ? 'decimal' : undefined });
      if (fd.type === 'datetime') input.value = toLocalInput(fd.value);
      else if (fd.type === 'list') input.value = Array.isArray(fd.value) ? fd.value.join(', ') : (fd.value ?? '');
      else input.value = fd.value ?? '';
    }
    const err = el('p', { id: errId, class: 'field-error', hidden: true });
    const label = el('label', { for: id, text: fd.label + (fd.required ? ' (required)' : '') });
    const row = fd.type === 'checkbox'
      ? el('div', { class: 'field field-check' }, input, label, fd.help && el('p', { id: helpId, class: 'help', text: fd.help }), err)
      : el('div', { class: 'field' }, label, input, fd.help && el('p', { id: helpId, class: 'help', text: fd.help }), err);
    f.append(row);
    inputs.set(fd.name, { fd, input });
    errors.set(fd.name, err);
  }
  const formErr = el('p', { class: 'error-box', role: 'alert', hidden: true });
  const submitBtn = el('button', { type: 'submit', class: 'btn btn-primary', text: submit });
  const actions = el('div', { class: 'form-actions' }, submitBtn, onCancel && button(cancel, onCancel));
  f.append(formErr, actions);

  function clearErrors() {
    formErr.hidden = true;
    formErr.textContent = '';
    for (const [name, e] of errors) {
      e.hidden = true;
      e.textContent = '';
      inputs.get(name).input.removeAttribute('aria-invalid');
    }
  }
  /** showError puts a message next to a field (or above the buttons) and moves focus there. */
  function showError(param, message) {
    let name = param && inputs.has(param) ? param : null;
    if (!name && param) {
      const first = param.split(/[.[]/)[0];
      if (inputs.has(first)) name = first;
    }
    if (name) {
      const e = errors.get(name);
      e.textContent = message;
      e.hidden = false;
      const inp = inputs.get(name).input;
      inp.setAttribute('aria-invalid', 'true');
      inp.focus();
    } else {
      formErr.textContent = message;
      formErr.hidden = false;
      formErr.focus?.();
    }
  }
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors();
    const values = {};
    for (const [name, { fd, input }] of inputs) values[name] = fieldValue(fd, input);
    submitBtn.disabled = true;
    try {
      await onSubmit(values);
    } catch (err) {
      if (err instanceof ApiError) showError(err.param, err.message);
      else showError('', err && err.message ? err.message : String(err));
    } finally {
      submitBtn.disabled = false;
    }
  });
  f.showError = showError;
  f.input = (name) => inputs.get(name)?.input;
  return f;
}

/** toast shows a short message for a few seconds; kind is info, ok or bad. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = el('div', { class: `toast toast-${kind}`, text: message });
  box.append(t);
  setTimeout(() => t.remove(), kind === 'bad' ? 8000 : 4000);
}

const openDialogs = new Set(); // the close functions of the dialogs on screen

/**
 * closeAllDialogs closes every open dialog now: each leaves the page and runs its onClose before
 * this returns (a <dialog>'s own close event comes a task later).
 */
export function closeAllDialogs() {
  for (const close of [...openDialogs]) close();
}

/**
 * dialog({title, body, actions, onClose}) opens a modal <dialog> (Escape closes it, focus stays
 * inside) and removes it from the page when it closes. actions: [{label, kind, onClick(close)}], or
 * null when the body has its own buttons (a form).
 * Returns {element, close}.
 */
export function dialog({ title, body, actions = [], onClose, wide }) {
  const titleId = nextId('dlg');
  const d = el('dialog', { class: ['dialog', wide && 'dialog-wide'], 'aria-labelledby': titleId });
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    openDialogs.delete(close);
    if (d.open) d.close();
    d.remove();
    if (onClose) onClose();
  };
  d.addEventListener('close', close);
  d.addEventListener('cancel', () => close());
  // actions null: the body brings its own buttons (a form); [] or absent: one Close button.
  const btns = actions === null ? [] : (actions.length ? actions : [{ label: 'Close', onClick: close }]);
  d.append(
    el('h2', { id: titleId, text: title }),
    el('div', { class: 'dialog-body' }, body),
    btns.length ? el('div', { class: 'form-actions' }, btns.map((a) => button(a.label, () => a.onClick(close), { kind: a.kind }))) : null,
  );
  document.body.append(d);
  d.showModal();
  openDialogs.add(close);
  return { element: d, close };
}

/** confirm asks a yes/no question in a dialog and answers true when confirmed. */
export function confirm({ title, message, confirmLabel = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    dialog({
      title,
      body: el('p', { text: message }),
      onClose: () => resolve(answer),
      actions: [
        { label: 'Cancel', onClick: (close) => close() },
        { label: confirmLabel, kind: danger ? 'danger' : 'primary', onClick: (close) => { answer = true; close(); } },
      ],
    });
  });
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const ta = el('textarea', { class: 'visually-hidden', 'aria-hidden': 'true' });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  const ok = document.execCommand('copy');
  ta.value = '';
  ta.remove();
  if (!ok) throw new Error('copy refused');
}

/** copyButton copies getText() to the clipboard and says so. */
export function copyButton(getText, label = 'Copy') {
  const b = button(label, async () => {
    try {
      await copyText(getText());
      b.textContent = 'Copied';
      toast('Copied to the clipboard.', 'ok');
      setTimeout(() => { b.textContent = label; }, 2000);
    } catch {
      toast('The browser refused the clipboard; select the text and copy it.', 'bad');
    }
  });
  return b;
}

/**
 * showSecret shows a secret once (a created key, an admin token) in a dialog with a copy button.
 * When the dialog closes, the secret's nodes are emptied and removed from the page. Resolves then.
 */
export function showSecret({ title, secret, note }) {
  return new Promise((resolve) => {
    const out = el('input', { type: 'text', readonly: true, class: 'secret', 'aria-label': 'Secret value', spellcheck: 'false', autocomplete: 'off' });
    out.value = secret;
    const body = el('div', {},
      el('p', { class: 'warn-text', text: note || 'This is the only time it is shown. Copy it now and keep it somewhere safe.' }),
      el('div', { class: 'secret-row' }, out, copyButton(() => out.value, 'Copy')));
    secret = '';
    dialog({
      title, body, wide: true,
      onClose: () => { out.value = ''; clear(body); resolve(); },
      actions: [{ label: 'I have copied it', kind: 'primary', onClick: (close) => close() }],
    });
    out.focus();
    out.select();
  });
}

/** definitionList shows label/value pairs. */
export function definitionList(pairs) {
  return el('dl', { class: 'pairs' }, pairs.map(([k, v]) => [el('dt', { text: k }), el('dd', {}, v === undefined || v === null || v === '' ? '—' : v)]));
}
