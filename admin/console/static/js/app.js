// llmgate admin console: the shell (sign-in, layout, navigation, routing, theme).
//
// ─── PAGE CONTRACT ──────────────────────────────────────────────────────────────────────────────
// A page is a module js/pages/<name>.js that exports
//
//   export const page = {
//     id: 'keys',          // the hash route: #/keys
//     title: 'Keys',       // the navigation label and the page's <h1>
//     area: 'keys',        // the admin API area it reads (tenants, users, keys, tokens, quota,
//                          // pricing, usage, billing, credits, deployments, providers, audit-log,
//                          // alerts, open): the page is listed only when ctx.canRead(area)
//     render: async (root, ctx) => { ... },   // fill root (an empty <div>); the shell has drawn the <h1>
//   };
//
// and is listed, in navigation order, in the one array of js/pages/index.js.
//
// ctx, given to render:
//   ctx.api.get(path, query)          GET; path '/admin/keys' or 'keys'; query an object (empty
//                                     values are left out). Answers the parsed JSON.
//   ctx.api.send(method, path, body)  POST/PUT/PATCH/DELETE with a JSON body (undefined: none); the
//                                     shell adds the CSRF token. Answers the parsed JSON.
//                                     Both throw ApiError {status, code, param, type, message} with
//                                     the admin API's error; a 401 also sends the user to sign-in.
//   ctx.api.url(path, query)          a same-origin URL (a CSV download link: the cookie goes along).
//   ctx.principal                     {actor, role, tenant}: tenant '' means every tenant.
//   ctx.canRead(area)                 mirrors the server's rules (billing reads pricing, usage,
//                                     billing and credits only).
//   ctx.canWrite(area, {global})      mirrors the server's rules: viewers false everywhere; billing
//                                     only pricing/usage/billing/credits; {global: true} (a change
//                                     shared by every tenant: tenants, pricing, deployments,
//                                     providers, credit movements) false for a tenant-scoped token.
//                                     Mutation controls are NOT rendered when false (the server
//                                     refuses a forged one anyway).
//   ctx.ui                            DOM helpers from ui.js: el, clear, table, pagedTable, form,
//                                     toast, confirm, dialog, showSecret, copyButton, badge, button,
//                                     section, filters, toolbar, errorBox, timeCell, fmtTime,
//                                     definitionList.
//   ctx.route                         {id, params}: params are the hash's query, e.g.
//                                     #/usage?userId=u1 → {userId: 'u1'}.
//   ctx.setParams(params)             rewrites the hash's query without a re-render (keeps a
//                                     filter across a reload). Never put a secret there.
//   ctx.navigate(id, params)          goes to another page.
//   ctx.signal                        an AbortSignal aborted when the user leaves the page.
//
// Rules: no innerHTML (build with ctx.ui.el), no inline style or script (the CSP forbids them),
// no secret in the DOM after it is dismissed (ctx.ui.showSecret), nothing in localStorage or
// sessionStorage but the theme, no request anywhere but the admin API on this origin.
// ────────────────────────────────────────────────────────────────────────────────────────────────

import { ApiError, makeApi } from './api.js';
import * as ui from './ui.js';
import { pages } from './pages/index.js';

const { el, clear } = ui;

// The session: who is signed in and the CSRF token, in memory only.
const session = { principal: null, csrf: '', expiresAt: null };

const app = document.getElementById('app');
// A 401 while signed in means the session ended (signed out elsewhere, expired, token revoked).
const api = makeApi(session, () => { if (session.principal) signedOut('Your session has ended; sign in again.'); });

// Areas the billing role may read and change, as the server's billingAreas.
const billingAreas = new Set(['pricing', 'usage', 'billing', 'credits', 'open']);

function canRead(area) {
  const p = session.principal;
  if (!p) return false;
  if (p.role === 'admin' || p.role === 'viewer') return true;
  if (p.role === 'billing') return billingAreas.has(area);
  return false;
}

function canWrite(area, opts = {}) {
  const p = session.principal;
  if (!p) return false;
  if (opts.global && p.tenant) return false;
  if (p.role === 'admin') return true;
  if (p.role === 'billing') return billingAreas.has(area);
  return false;
}

// ── theme ──
const themeKey = 'llmgate-console-theme';
function effectiveDark() {
  const t = document.documentElement.dataset.theme;
  if (t) return t === 'dark';
  return window.matchMedia('(prefers-color-scheme: dark)').matches;
}
function applyTheme(t) {
  if (t === 'dark' || t === 'light') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}
applyTheme(localStorage.getItem(themeKey));

function themeToggle() {
  const b = el('button', { type: 'button', class: 'btn btn-ghost theme-toggle', 'aria-pressed': String(effectiveDark()), text: 'Dark mode' });
  b.addEventListener('click', () => {
    const next = effectiveDark() ? 'light' : 'dark';
    applyTheme(next);
    localStorage.setItem(themeKey, next);
    b.setAttribute('aria-pressed', String(next === 'dark'));
  });
  return b;
}

// ── routing ──
function parseHash() {
  const h = location.hash || '';
  if (!h.startsWith('#/')) return null;
  const [path, qs] = h.slice(2).split('?');
  const params = {};
  for (const [k, v] of new URLSearchParams(qs || '')) params[k] = v;
  return { id: decodeURIComponent(path || ''), params };
}

function hashFor(id, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return '#/' + encodeURIComponent(id) + (s ? '?' + s : '');
}

function visiblePages() {
  return pages.filter((p) => canRead(p.area));
}

// ── sign-in ──
function signInView(message) {
  document.title = 'Sign in · llmgate console';
  const box = el('main', { id: 'main', class: 'signin', tabindex: '-1' });
  const f = ui.form({
    class: 'signin-form',
    submit: 'Sign in',
    fields: [{ name: 'token', label: 'Admin token', type: 'password', required: true, trim: false,
      help: 'The bootstrap token (admin_token) or an admin token made with POST /admin/tokens. It is exchanged for a session cookie and not kept by the page.' }],
    onSubmit: async (v) => {
      const input = f.input('token');
      const token = v.token;
      input.value = '';
      if (!token.trim()) throw new ApiError(400, { error: { message: 'Give the bootstrap token or an admin token.', param: 'token' } });
      const s = await api.send('POST', '/admin/session', { token });
      startSession(s);
    },
  });
  box.append(el('div', { class: 'card signin-card' },
    el('h1', { text: 'llmgate console' }),
    message ? el('p', { class: 'notice', role: 'status', text: message }) : null,
    f));
  clear(app).append(box);
  f.input('token').focus();
}

function startSession(s) {
  session.principal = { actor: s.actor, role: s.role, tenant: s.tenant || '' };
  session.csrf = s.csrf_token || '';
  session.expiresAt = s.expires_at || null;
  renderShell();
}

function signedOut(message) {
  session.principal = null;
  session.csrf = '';
  session.expiresAt = null;
  if (current) current.abort();
  current = null;
  // Dialogs live outside the app's root: close them now, not a task later (a shown secret is
  // emptied as it closes).
  ui.closeAllDialogs();
  signInView(message);
}

async function signOut() {
  try {
    await api.send('DELETE', '/admin/session');
  } catch {
    // Signed out either way: the cookie is gone or the session was already over.
  }
  signedOut('You have signed out.');
}

// ── layout ──
let current = null; // AbortController of the page on screen
let nav = null;
let main = null;

function renderShell() {
  const p = session.principal;
  const who = `${p.actor} · ${p.role}` + (p.tenant ? ` · tenant ${p.tenant}` : ' · all tenants');
  const navToggle = el('button', { type: 'button', class: 'btn btn-ghost nav-toggle', 'aria-expanded': 'false', 'aria-controls': 'nav', text: 'Menu' });
  nav = el('nav', { id: 'nav', class: 'nav', 'aria-label': 'Console pages' });
  navToggle.addEventListener('click', () => {
    const open = nav.classList.toggle('open');
    navToggle.setAttribute('aria-expanded', String(open));
  });
  const list = el('ul');
  for (const pg of visiblePages()) {
    list.append(el('li', {}, el('a', { href: hashFor(pg.id), 'data-page': pg.id, text: pg.title })));
  }
  nav.append(list);
  nav.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) {
      nav.classList.remove('open');
      navToggle.setAttribute('aria-expanded', 'false');
    }
  });
  main = el('main', { id: 'main', class: 'main', tabindex: '-1' });
  const header = el('header', { class: 'topbar' },
    navToggle,
    el('span', { class: 'brand', text: 'llmgate' }),
    el('span', { class: 'who', title: 'Signed in as', text: who }),
    el('span', { class: 'spacer' }),
    themeToggle(),
    ui.button('Sign out', signOut, { kind: 'ghost' }));
  clear(app).append(header, el('div', { class: 'layout' }, nav, main));
  route(false);
}

function route(userMoved = true) {
  if (!session.principal || !main) return;
  const list = visiblePages();
  const r = parseHash();
  if (r === null && location.hash && userMoved) return; // an in-page anchor such as the skip link
  let pg = r && list.find((x) => x.id === r.id);
  if (!pg) {
    pg = list[0];
    if (!pg) {
      clear(main).append(el('h1', { text: 'Nothing to show' }), ui.errorBox('This token may read none of the console pages.'));
      return;
    }
    history.replaceState(null, '', hashFor(pg.id));
  }
  const params = (r && r.id === pg.id && r.params) || {};
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.page === pg.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  const h1 = el('h1', { tabindex: '-1', text: pg.title });
  // aria-busy until the page's render has finished (what it awaits is on screen).
  const root = el('div', { class: 'page', 'data-page': pg.id, 'aria-busy': 'true' });
  clear(main).append(h1, root);
  document.title = `${pg.title} · llmgate console`;
  if (userMoved) h1.focus();
  const ctx = {
    api: {
      get: (path, query) => api.get(path, query, { signal }),
      send: (method, path, body) => api.send(method, path, body, { signal }),
      url: api.url,
    },
    principal: { ...session.principal },
    canRead,
    canWrite,
    ui,
    route: { id: pg.id, params },
    setParams: (p) => history.replaceState(null, '', hashFor(pg.id, p)),
    navigate: (id, p) => { location.hash = hashFor(id, p); },
    signal,
  };
  Promise.resolve()
    .then(() => pg.render(root, ctx))
    .catch((err) => {
      if (signal.aborted || (err && err.name === 'AbortError')) return;
      if (err instanceof ApiError && err.status === 401) return;
      root.append(ui.errorBox(err && err.message ? err.message : String(err)));
    })
    .finally(() => root.removeAttribute('aria-busy'));
}

window.addEventListener('hashchange', () => route(true));

// The skip link moves focus to the page's main region without touching the route.
document.getElementById('skip-link')?.addEventListener('click', (ev) => {
  ev.preventDefault();
  document.getElementById('main')?.focus();
});

// ── boot: a session from before (the cookie survives a reload; the CSRF token is read again) ──
(async function boot() {
  try {
    const s = await api.get('/admin/session');
    if (s && s.csrf_token) {
      startSession(s);
      return;
    }
    signInView();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signInView();
      return;
    }
    signInView('The gateway did not answer as expected: ' + (err && err.message ? err.message : String(err)));
  }
})();
