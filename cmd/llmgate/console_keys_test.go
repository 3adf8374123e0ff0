package main

import (
	"strings"
	"testing"
)

// Browser tests of the console's shell and its Keys, Tenants, Users and Admin tokens pages. The
// harness is in console_browser_test.go.

// TestConsoleKeyLifecycle: sign in with the bootstrap token (by keyboard), make a key in the
// Keys page and use it through /v1/chat/completions, change its models, limits and expiry, rotate
// it (the old secret refused once its grace is over) and revoke it (the API refuses it), sign out
// (the session is over on the server); no secret in the page at any step.
func TestConsoleKeyLifecycle(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		runConsole(t, e, consoleKeyLifecycle)
	})
}

const consoleKeyLifecycle = `
const { page } = await newPage();
await page.goto(ADMIN + '/console/');
await page.getByLabel('Admin token').waitFor();
// The sign-in field has the focus; the skip link is the first stop in the keyboard's order.
check(await page.evaluate(() => document.activeElement && document.activeElement.id) === (await page.getByLabel('Admin token').getAttribute('id')), 'the token field has the focus');
check(await page.evaluate(() => document.querySelector('a[href], button, input, select, textarea').textContent) === 'Skip to main content', 'the skip link comes first');
await shot(page, 'sign-in');
await signIn(page, ADMIN_TOKEN);
check(await page.getByLabel('Admin token').count() === 0, 'the sign-in form is gone');
await noSecrets(page, 'after sign-in');
// The Overview is the landing page and the first entry of the menu.
check(page.url().endsWith('/console/#/overview'), 'the first page is the Overview: ' + page.url());
check(await page.evaluate(() => document.querySelector('nav a').dataset.page) === 'overview', 'the Overview leads the menu');
await openPage(page, 'keys');

// Create a key.
await page.getByRole('button', { name: 'New key' }).click();
const dlg = page.getByRole('dialog', { name: 'New API key' });
await dlg.getByLabel('Name', { exact: true }).fill('console-key');
await dlg.getByLabel('Models').fill('gpt-test, other');
await dlg.getByLabel('Requests per minute').fill('100');
await dlg.getByLabel('Budget per day (USD)').fill('2.5');
await dlg.getByRole('button', { name: 'Create key' }).click();
const shown = page.locator('dialog input.secret');
await shown.waitFor();
const key = await shown.inputValue();
check(key.startsWith('sk-'), 'the dialog shows the new key: ' + key.slice(0, 3));
check(await page.getByRole('button', { name: 'Copy' }).count() === 1, 'a copy button beside it');
await shot(page, 'key-created');
await page.getByRole('button', { name: 'I have copied it' }).click();
secrets.add(key);
await settle(page);
await noSecrets(page, 'after the key dialog');

// The key works through the public API.
check(await chat(key) === 200, 'the new key is served');
const listed = await api(ADMIN_TOKEN, 'GET', '/admin/keys?name=console-key');
check(listed.body.data.length === 1, 'one key listed: ' + JSON.stringify(listed.body));
const k = listed.body.data[0];
check(JSON.stringify(k.models) === '["gpt-test","other"]' && k.limits.rpm === 100 && k.limits.budget_usd_per_day === '2.5',
  'the key as created: ' + JSON.stringify(k));
const row = page.locator('tr', { hasText: 'console-key' });
await row.waitFor();
await shot(page, 'keys');

// A server-side error is shown next to its field, and a fixed form goes through.
await row.getByRole('button', { name: /^Edit/ }).click();
const edit = page.getByRole('dialog', { name: /^Edit key/ });
await edit.getByLabel('Models').fill('gpt-test');
await edit.getByLabel('Tokens per day').fill('-5');
await edit.getByRole('button', { name: 'Save' }).click();
const fieldErr = edit.locator('.field-error:not([hidden])');
await fieldErr.waitFor();
check(await edit.getByLabel('Tokens per day').getAttribute('aria-invalid') === 'true', 'the refused field is marked invalid: ' + await fieldErr.textContent());
await edit.getByLabel('Tokens per day').fill('50000');
await edit.getByLabel('Expires at').fill('2099-01-02T03:04');
await edit.getByRole('button', { name: 'Save' }).click();
await edit.waitFor({ state: 'detached' });
const after = await api(ADMIN_TOKEN, 'GET', '/admin/keys/' + k.id);
check(JSON.stringify(after.body.models) === '["gpt-test"]' && after.body.limits.tokens_per_day === 50000 &&
  after.body.limits.rpm === 100 && after.body.expires_at && after.body.expires_at.startsWith('2099-01-0'), 'the key as edited: ' + JSON.stringify(after.body));

// Rotate with no grace: the new secret is shown once, the old one is refused.
await settle(page);
await row.getByRole('button', { name: /^Rotate/ }).click();
const rot = page.getByRole('dialog', { name: /^Rotate key/ });
await rot.getByLabel('Grace period (hours)').fill('0');
await rot.getByRole('button', { name: 'Rotate' }).click();
await shown.waitFor();
const rotated = await shown.inputValue();
check(rotated.startsWith('sk-') && rotated !== key, 'the rotated key is new');
await page.getByRole('button', { name: 'I have copied it' }).click();
secrets.add(rotated);
await noSecrets(page, 'after rotation');
await waitFor(async () => (await chat(key)) === 401, 'the old secret to be refused');
check(await chat(rotated) === 200, 'the rotated key is served');

// Revoke: the API refuses the key.
await settle(page);
await row.getByRole('button', { name: /^Revoke/ }).click();
await page.getByRole('dialog', { name: 'Revoke key' }).getByRole('button', { name: 'Revoke' }).click();
await page.locator('tr', { hasText: 'console-key' }).locator('.badge', { hasText: 'revoked' }).waitFor();
await waitFor(async () => (await chat(rotated)) === 401, 'the revoked key to be refused');
await shot(page, 'key-revoked');
await noSecrets(page, 'after revocation');

// The session survives a reload (the CSRF token is read again), then sign-out ends it on the server.
await page.reload();
await page.locator('nav#nav').waitFor({ state: 'attached' });
const cookie = (await page.context().cookies()).find((c) => c.name === 'llmgate_console');
check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
const replay = () => fetch(ADMIN + '/admin/keys', { headers: { Cookie: 'llmgate_console=' + cookie.value } }).then((r) => r.status);
check(await replay() === 200, 'the cookie works before sign-out');
await page.getByRole('button', { name: 'Sign out' }).click();
await page.getByLabel('Admin token').waitFor();
check(await replay() === 401, 'the same cookie after sign-out is refused by the server');
check(!(await page.context().cookies()).some((c) => c.name === 'llmgate_console'), 'the browser dropped the cookie');
await noSecrets(page, 'after sign-out');
`

// TestConsoleViewerAndForgery: a viewer token sees the pages but no control that changes
// anything; mutations forged from the page with the cookie are refused (a viewer's with its CSRF
// token, an admin session's without it or with a wrong one, a cross-origin form post), and a
// request without a session is 401.
func TestConsoleViewerAndForgery(t *testing.T) {
	e := newEnv(t)
	c := newAdmClient(t, e)
	viewer := c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "console viewer", "role": "viewer"}).JSON("token").String()
	c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "console-t", "name": "Console tenant"})
	scoped := c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "console scoped", "role": "admin", "tenant_id": "console-t"}).JSON("token").String()
	billing := c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "console billing", "role": "billing"}).JSON("token").String()
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "console-u", "tenant_id": "console-t"})
	c.Must(201, "POST", "/admin/keys", map[string]any{"name": "viewer-sees-me", "user_id": "console-u"})
	out := runConsole(t, e, consoleViewerAndForgery, "CONSOLE_VIEWER="+viewer, "CONSOLE_SCOPED="+scoped, "CONSOLE_BILLING="+billing)
	if !strings.Contains(out, "viewer pages: overview keys tenants users tokens quotas pricing providers usage credits audit-log\n") {
		t.Errorf("the viewer's pages:\n%s", out)
	}
	// Nothing forged changed anything.
	c.Must(404, "GET", "/admin/tenants/forged-1", nil)
	c.Must(404, "GET", "/admin/tenants/forged-2", nil)
	c.Must(404, "GET", "/admin/tenants/forged-3", nil)
	c.Must(404, "GET", "/admin/tenants/forged-4", nil)
}

const consoleViewerAndForgery = `
const VIEWER = process.env.CONSOLE_VIEWER;
secrets.add(VIEWER);
const { page } = await newPage();
await signIn(page, VIEWER);
const ids = await page.evaluate(() => [...document.querySelectorAll('nav a')].map((a) => a.dataset.page));
console.log('viewer pages: ' + ids.join(' '));
check(ids[0] === 'overview' && page.url().endsWith('#/overview'), 'a viewer lands on the Overview: ' + page.url());
for (const id of ids) {
  await openPage(page, id);
  const controls = await mutationControls(page);
  check(controls.length === 0, 'the viewer sees mutation controls on ' + id + ': ' + controls.join(', '));
  await noSecrets(page, 'viewer on ' + id);
}
await openPage(page, 'keys');
await page.locator('tr', { hasText: 'viewer-sees-me' }).waitFor();
await shot(page, 'viewer-keys');

// Forged from the page: the viewer's session with its own CSRF token is still a viewer.
const forge = (csrf, id) => page.evaluate(async ([csrf, id]) => {
  const headers = { 'Content-Type': 'application/json' };
  if (csrf !== null) headers['X-CSRF-Token'] = csrf;
  const r = await fetch('/admin/tenants', { method: 'POST', headers, body: JSON.stringify({ id, name: 'forged' }) });
  return { status: r.status, body: await r.json() };
}, [csrf, id]);
const viewerCSRF = await page.evaluate(() => fetch('/admin/session').then((r) => r.json()).then((s) => s.csrf_token));
let r = await forge(viewerCSRF, 'forged-1');
check(r.status === 403 && r.body.error.code === 'insufficient_role', 'a viewer session changes nothing: ' + JSON.stringify(r));

// An admin session: without the CSRF token, or with a wrong one (the viewer's), refused.
const admin = await newPage();
await signIn(admin.page, ADMIN_TOKEN);
const forgeAdmin = (csrf, id) => admin.page.evaluate(async ([csrf, id]) => {
  const headers = { 'Content-Type': 'application/json' };
  if (csrf !== null) headers['X-CSRF-Token'] = csrf;
  const r = await fetch('/admin/tenants', { method: 'POST', headers, body: JSON.stringify({ id, name: 'forged' }) });
  return { status: r.status, body: await r.json() };
}, [csrf, id]);
r = await forgeAdmin(null, 'forged-2');
check(r.status === 403 && r.body.error.code === 'csrf_token_invalid', 'no CSRF token: ' + JSON.stringify(r));
r = await forgeAdmin(viewerCSRF, 'forged-3');
check(r.status === 403 && r.body.error.code === 'csrf_token_invalid', 'another session\'s CSRF token: ' + JSON.stringify(r));

// Another origin (the public listener) posting to the admin API with the browser's cookie: the
// cookie may go along (same site), the CSRF token cannot.
await admin.page.goto(PUBLIC + '/health/live');
await admin.page.evaluate(async (url) => {
  await fetch(url + '/admin/tenants', { method: 'POST', mode: 'no-cors', credentials: 'include',
    headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ id: 'forged-4', name: 'forged' }) }).catch(() => {});
}, ADMIN);

// No session at all: 401.
const anon = await newPage();
await anon.page.goto(ADMIN + '/console/');
await anon.page.getByLabel('Admin token').waitFor();
const noSession = await anon.page.evaluate(() => fetch('/admin/keys').then((r) => r.json().then((b) => ({ status: r.status, code: b.error.code }))));
check(noSession.status === 401 && noSession.code === 'missing_admin_token', 'no session: ' + JSON.stringify(noSession));
const wrong = await anon.page.evaluate(() => fetch('/admin/session', { method: 'POST', headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ token: 'wrong-token-wrong-token-wrong-token-0123' }) }).then((r) => r.status));
check(wrong === 401, 'a wrong token does not sign in: ' + wrong);
await anon.page.getByLabel('Admin token').fill('wrong-token-wrong-token-wrong-token-0123');
await anon.page.getByRole('button', { name: 'Sign in' }).click();
await anon.page.locator('.field-error:not([hidden])').waitFor();
check((await anon.page.locator('.field-error:not([hidden])').textContent()).includes('Invalid admin token'), 'the sign-in error is shown by the field');
await noSecrets(page, 'viewer at the end');

// A token scoped to a tenant changes its tenant's keys and users, not tenants (shared by all).
const SCOPED = process.env.CONSOLE_SCOPED;
secrets.add(SCOPED);
const sc = await newPage();
await signIn(sc.page, SCOPED);
await openPage(sc.page, 'keys');
check((await mutationControls(sc.page)).includes('New key'), 'a scoped admin may make keys');
check(await sc.page.getByLabel('Tenant', { exact: true }).count() === 0, 'a scoped admin has no tenant filter');
await sc.page.locator('tr', { hasText: 'viewer-sees-me' }).waitFor();
await openPage(sc.page, 'tenants');
check((await mutationControls(sc.page)).length === 0, 'a scoped admin sees no tenant controls: ' + (await mutationControls(sc.page)).join(', '));
const tenantRows = await sc.page.locator('table.data tbody tr').count();
check(tenantRows === 1 && (await sc.page.locator('table.data tbody').textContent()).includes('console-t'), 'a scoped admin lists its own tenant only');
await noSecrets(sc.page, 'scoped admin');
// Its token is revoked while a form is open: the next call ends the session in the page too.
await openPage(sc.page, 'keys');
await sc.page.getByRole('button', { name: 'New key' }).click();
const scopedTok = (await api(ADMIN_TOKEN, 'GET', '/admin/tokens?name=console%20scoped')).body.data[0];
check((await api(ADMIN_TOKEN, 'DELETE', '/admin/tokens/' + scopedTok.id)).status === 200, 'the scoped token revoked');
await sc.page.getByRole('dialog', { name: 'New API key' }).getByRole('button', { name: 'Create key' }).click();
await sc.page.getByText('Your session has ended; sign in again.').waitFor();
check(await sc.page.locator('dialog').count() === 0, 'no dialog is left open after the session ended');

// The billing role sees none of these pages (they are not its areas).
const BILLING = process.env.CONSOLE_BILLING;
secrets.add(BILLING);
const bl = await newPage();
await signIn(bl.page, BILLING);
const billingPages = await bl.page.evaluate(() => [...document.querySelectorAll('nav a')].map((a) => a.dataset.page));
check(!billingPages.some((p) => ['keys', 'tenants', 'users', 'tokens'].includes(p)), 'billing sees ' + billingPages.join(' '));
check(billingPages[0] === 'overview' && bl.page.url().endsWith('#/overview'), 'billing lands on the Overview: ' + bl.page.url());
await noSecrets(bl.page, 'billing');
`

// TestConsolePages: every page of the shell at a laptop width, in dark mode, and at a phone
// width (no sideways scrolling of the page itself; the menu opens by keyboard); screenshots of
// each.
func TestConsolePages(t *testing.T) {
	e := newEnv(t)
	c := newAdmClient(t, e)
	c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "acme", "name": "Acme Corp", "limits": map[string]any{"rpm": 600}})
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "alice", "tenant_id": "acme", "email": "alice@example.com"})
	c.Must(201, "POST", "/admin/keys", map[string]any{"name": "alice-laptop", "user_id": "alice", "models": []string{"gpt-test"},
		"limits": map[string]any{"rpm": 60, "budget_usd_per_month": "25"}})
	c.Must(201, "POST", "/admin/keys", map[string]any{"name": "batch-jobs", "tenant_id": "acme"})
	c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "finance", "role": "billing"})
	runConsole(t, e, consolePages)
}

const consolePages = `
const pages = ['keys', 'tenants', 'users', 'tokens'];
for (const [label, opts] of [['light', {}], ['dark', { colorScheme: 'dark' }], ['phone', { width: 375, height: 800 }]]) {
  const { page } = await newPage(opts);
  await signIn(page, ADMIN_TOKEN);
  for (const id of pages) {
    await openPage(page, id);
    check(await page.locator('main h1').textContent() !== '', id + ' has a heading');
    if (label === 'phone') {
      const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(over <= 0, id + ' scrolls sideways by ' + over + 'px at 375px');
    }
    if (label === 'dark') {
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      check(bg === 'rgb(17, 20, 24)', 'dark background on ' + id + ': ' + bg);
    }
    await shot(page, id + '-' + label);
    await noSecrets(page, id + ' ' + label);
  }
  if (label === 'phone') {
    const menu = page.getByRole('button', { name: 'Menu' });
    await menu.focus();
    await page.keyboard.press('Enter');
    check(await menu.getAttribute('aria-expanded') === 'true', 'the menu opens by keyboard');
    await page.getByRole('link', { name: 'Tenants' }).waitFor();
    await shot(page, 'menu-phone');
  }
  if (label === 'light') {
    // Keyboard: the focused control shows a focus ring; a dialog opens from a button and Escape
    // closes it, leaving nothing behind.
    await openPage(page, 'keys');
    await page.locator('main h1').focus();
    await page.keyboard.press('Tab');
    const ring = await page.evaluate(() => { const s = getComputedStyle(document.activeElement); return [document.activeElement.textContent, s.outlineStyle, s.outlineWidth]; });
    check(ring[1] !== 'none' && ring[2] !== '0px', 'a focus ring on ' + ring[0] + ': ' + ring.slice(1).join(' '));
    await page.getByRole('button', { name: 'New key' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('dialog', { name: 'New API key' }).waitFor();
    check(await page.evaluate(() => document.activeElement.closest('dialog') !== null), 'focus moves into the dialog');
    await page.keyboard.press('Escape');
    await page.locator('dialog').waitFor({ state: 'detached' });
    // The toggle overrides the system's scheme, and is remembered.
    await page.getByRole('button', { name: 'Dark mode' }).click();
    check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'the toggle sets dark mode');
    await page.reload();
    await page.locator('nav#nav').waitFor({ state: 'attached' });
    check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'dark mode is remembered');
    check(await page.getByRole('button', { name: 'Dark mode' }).getAttribute('aria-pressed') === 'true', 'the toggle says it is on');
  }
}
`
