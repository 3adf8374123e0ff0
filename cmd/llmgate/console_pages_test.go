package main

import (
	"net"
	"testing"

	"github.com/llmgate/llmgate/providers"
)

// Browser tests of the console's Overview, Quotas, Pricing, Providers, Usage audit, Credits and
// Admin audit log pages, on the harness of console_browser_test.go. Each signs in, works the page
// as an admin would, checks the result through the admin API or the public one, and checks that
// no secret is in the page.

// consolePagesHelpers is prepended to the bodies below: waiting for a usage record, and the
// labels of the mutation controls of these pages.
const consolePagesHelpers = `
const KEY = process.env.CONSOLE_KEY;
secrets.add(KEY);

// chatReq sends one chat request with the env's key and answers {status, id} (the X-Request-Id).
async function chatReq(model) {
  const res = await fetch(PUBLIC + '/v1/chat/completions', { method: 'POST',
    headers: { Authorization: 'Bearer ' + KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello from the console pages test' }] }) });
  await res.text();
  return { status: res.status, id: res.headers.get('x-request-id') };
}

// record waits for the usage record of a request id and answers it (GET /admin/audit).
async function record(id, query = '') {
  let rec = null;
  await waitFor(async () => {
    const r = await api(ADMIN_TOKEN, 'GET', '/admin/audit?size=1000' + query);
    rec = (r.body.data || []).find((x) => x.request_id === id);
    return !!rec;
  }, 'the usage record of ' + id);
  return rec;
}

// pageControls are the labels of the buttons of these pages that change something.
async function pageControls(page) {
  return page.evaluate(() => [...document.querySelectorAll('main button')]
    .map((b) => b.textContent.trim())
    .filter((t) => /^(Price a model|Edit|Disable|Enable|Weight|Reset|New policy|Delete|Save|Top up|Adjust|Clear session)/.test(t)));
}
`

func runConsolePages(t *testing.T, e *env, body string) string {
	t.Helper()
	return runConsole(t, e, consolePagesHelpers+body, "CONSOLE_KEY="+e.key)
}

// TestConsolePagesUsageAndOverview: a chat request through the gateway appears in the usage
// audit (found by model, user-less key and trace id, its full record opened) and in the
// overview's totals, charts and top models; the usage page's CSV link downloads the current
// search with the session cookie alone (no token in the URL); no secret in the pages.
func TestConsolePagesUsageAndOverview(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		runConsolePages(t, e, `
const { page } = await newPage();
await signIn(page, ADMIN_TOKEN);
const res = await fetch(PUBLIC + '/v1/chat/completions', { method: 'POST',
  headers: { Authorization: 'Bearer ' + KEY, 'Content-Type': 'application/json', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
  body: JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: 'hello' }] }) });
await res.text();
check(res.status === 200, 'the chat request is served: ' + res.status);
const id = res.headers.get('x-request-id');
const rec = await record(id);

// The usage audit lists it; its record opens in full.
await openPage(page, 'usage');
const row = page.locator('tr', { has: page.locator('button[title="' + id + '"]') });
await row.waitFor();
check((await row.textContent()).includes('gpt-test'), 'the row names the model');
await shot(page, 'usage');
await row.locator('button[title="' + id + '"]').click();
const dlg = page.getByRole('dialog', { name: 'Request ' + id });
await dlg.waitFor();
const text = await dlg.textContent();
for (const want of [id, rec.key_id, 'up/up-model', rec.price_version || 'price_version', String(rec.prompt_tokens)]) {
  check(text.includes(want), 'the record dialog shows ' + want + ': ' + text);
}
await shot(page, 'usage-record');
await dlg.getByRole('button', { name: 'Close' }).click();

// Search by trace id: the form's fields go to the API and the hash route.
await page.getByLabel('Trace id').fill('4bf92f3577b34da6a3ce929d0e0e4736');
await page.getByLabel('Model').fill('gpt-test');
await page.getByRole('button', { name: 'Search' }).click();
await settle(page);
await page.waitForFunction(() => location.hash.includes('traceId=4bf92f3577b34da6a3ce929d0e0e4736'));
await page.locator('button[title="' + id + '"]').waitFor();
check(await page.locator('tbody tr').count() === 1, 'one record of the trace');

// A bad filter is shown next to its field.
await page.getByLabel('HTTP status').fill('1000');
await page.getByRole('button', { name: 'Search' }).click();
const err = page.locator('.field-error:not([hidden])');
await err.waitFor();
check(await page.getByLabel('HTTP status').getAttribute('aria-invalid') === 'true', 'the status field is marked: ' + await err.textContent());
await page.getByLabel('HTTP status').fill('');
await page.getByRole('button', { name: 'Search' }).click();
await settle(page);

// The CSV link is the current search on the same origin, with no token; the browser downloads it
// with the session cookie.
const href = await page.getByRole('link', { name: 'Download CSV' }).getAttribute('href');
check(href.startsWith('/admin/audit.csv?') && href.includes('traceId=4bf92f3577b34da6a3ce929d0e0e4736') && href.includes('model=gpt-test'),
  'the CSV link carries the search: ' + href);
const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download CSV' }).click()]);
const fs = await import('node:fs/promises');
const csv = await fs.readFile(await download.path(), 'utf8');
check(csv.startsWith('request_id,') && csv.includes(id) && csv.trim().split('\n').length === 2, 'the CSV has the one record: ' + csv);
check((await fetch(ADMIN + href)).status === 401, 'the CSV link alone, without the cookie, is refused');
await noSecrets(page, 'usage page');

// The overview counts it.
await openPage(page, 'overview');
await page.locator('svg.chart').first().waitFor();
await page.getByRole('table', { name: 'Top models' }).waitFor();
const stats = await page.locator('.stats').textContent();
check(/Requests\s*[1-9]/.test(stats), 'the overview counts the request: ' + stats);
check((await page.getByRole('table', { name: 'Top models' }).textContent()).includes('gpt-test'), 'gpt-test among the top models');
check(await page.locator('svg.chart rect.chart-bar').count() >= 24, 'the requests chart has a bar a bucket');
check((await page.getByRole('table', { name: 'Breaker states' }).textContent()).includes('up/up-model'), 'breaker states listed');
await shot(page, 'overview');
await page.getByRole('button', { name: 'Last 30 days' }).click();
await page.waitForFunction(() => location.hash.includes('bucket=day'));
await page.getByRole('table', { name: 'Top users' }).waitFor();
await shot(page, 'overview-days');
await noSecrets(page, 'overview page');
`)
	})
}

// TestConsolePagesPriceEdit: a negative price is refused next to its field; a good one shows the
// version it made, and the next request is costed with it, as the usage audit page shows.
func TestConsolePagesPriceEdit(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		runConsolePages(t, e, `
const { page } = await newPage();
await signIn(page, ADMIN_TOKEN);
await openPage(page, 'pricing');
await page.getByRole('button', { name: 'Price a model' }).click();
const dlg = page.getByRole('dialog', { name: 'Price a model' });
await dlg.getByLabel('Model').fill('gpt-test');
await dlg.getByLabel('Input, USD per 1M tokens', { exact: true }).fill('-1');
await dlg.getByLabel('Output, USD per 1M tokens').fill('4');
await dlg.getByRole('button', { name: 'Save new version' }).click();
const err = dlg.locator('.field-error:not([hidden])');
await err.waitFor();
check(await dlg.getByLabel('Input, USD per 1M tokens', { exact: true }).getAttribute('aria-invalid') === 'true', 'the negative price is marked: ' + await err.textContent());
check((await err.textContent()).includes('input_per_million'), 'the API\'s message: ' + await err.textContent());
await shot(page, 'pricing-field-error');
await dlg.getByLabel('Input, USD per 1M tokens', { exact: true }).fill('2000');
await dlg.getByRole('button', { name: 'Save new version' }).click();
await dlg.waitFor({ state: 'detached' });
const notice = page.locator('[data-price-version]');
await notice.waitFor();
const version = await notice.getAttribute('data-price-version');
const hist = await api(ADMIN_TOKEN, 'GET', '/admin/pricing/gpt-test');
check(hist.body.data[0].version === version && hist.body.data[0].input_per_million === '2000', 'the version shown is the one in force: ' + JSON.stringify(hist.body.data[0]));
await shot(page, 'pricing');

// The history dialog lists it (opened from the notice: the table is paged by model name, and
// gpt-test need not be on its first page).
await notice.getByRole('button', { name: 'Price history of gpt-test' }).click();
const h = page.getByRole('dialog', { name: 'Price history of gpt-test' });
await h.locator('td', { hasText: version }).first().waitFor();
await h.getByRole('button', { name: 'Close' }).click();

// The next request is costed with it. Every replica (this one too) takes the new price from the
// change bus, which a loaded machine may deliver a moment after the PUT's answer: a request made
// before then keeps the old price, so wait for the first record with the new version.
let r = null;
let rec = null;
await waitFor(async () => {
  r = await chatReq('gpt-test');
  check(r.status === 200, 'chat: ' + r.status);
  rec = await record(r.id);
  return rec.price_version === version;
}, 'a request costed at version ' + version);
const want = (rec.prompt_tokens * 2000 + rec.completion_tokens * 4) / 1e6;
check(Math.abs(Number(rec.cost_usd) - want) < 1e-9, 'cost ' + rec.cost_usd + ' = tokens at the new price ' + want);
await page.evaluate((h) => { location.hash = h; }, '#/usage?model=gpt-test');
await page.locator('.page[data-page="usage"]').waitFor();
const urow = page.locator('tr', { has: page.locator('button[title="' + r.id + '"]') });
await urow.waitFor();
const utext = await urow.textContent();
check(utext.includes(version) && utext.includes('$' + rec.cost_usd), 'the usage audit page shows the version and cost: ' + utext);
await noSecrets(page, 'pricing');
`)
	})
}

// withDuo adds model "duo" served by two deployments of the mock upstream, the second a fallback.
func withDuo(c *Config) {
	c.Models = append(c.Models, providers.ModelConfig{Name: "duo", Deployments: []providers.DeploymentConfig{
		{ID: "duo-a", Provider: "up", Model: "duo-a-model", Priority: 0}, {ID: "duo-b", Provider: "up", Model: "duo-b-model", Priority: 1}}})
}

// TestConsolePagesDisableDeployment: disabling a deployment in the Providers page sends the next
// request to the other one; with both disabled the model answers 503 deployments_disabled, as
// the API does; a bad weight is refused next to its field, a good one is stored; enabling
// restores service.
func TestConsolePagesDisableDeployment(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		runConsolePages(t, e, `
const { page } = await newPage();
await signIn(page, ADMIN_TOKEN);
let r = await chatReq('duo');
check(r.status === 200 && (await record(r.id)).deployment === 'duo-a', 'duo is served by duo-a first');
await openPage(page, 'providers');
await page.getByRole('button', { name: 'Disable duo-a' }).click();
await page.getByRole('dialog', { name: 'Disable duo-a?' }).getByRole('button', { name: 'Disable' }).click();
await page.getByRole('button', { name: 'Enable duo-a' }).waitFor();
const dep = await api(ADMIN_TOKEN, 'GET', '/admin/deployments/duo-a');
check(dep.body.enabled === false && dep.body.override.enabled === false, 'the API shows duo-a disabled: ' + JSON.stringify(dep.body));
await waitFor(async () => { r = await chatReq('duo'); return r.status === 200 && (await record(r.id)).deployment === 'duo-b'; }, 'duo served by duo-b');
await shot(page, 'providers-disabled');

await page.getByRole('button', { name: 'Disable duo-b' }).click();
await page.getByRole('dialog', { name: 'Disable duo-b?' }).getByRole('button', { name: 'Disable' }).click();
await page.getByRole('button', { name: 'Enable duo-b' }).waitFor();
let body = null;
await waitFor(async () => {
  const res = await fetch(PUBLIC + '/v1/chat/completions', { method: 'POST', headers: { Authorization: 'Bearer ' + KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'duo', messages: [{ role: 'user', content: 'x' }] }) });
  body = await res.json();
  return res.status === 503;
}, 'duo refused with every deployment disabled');
check(body.error.code === 'deployments_disabled', 'as the API does: ' + JSON.stringify(body));

// Weight: a bad one is named next to its field.
await page.getByRole('button', { name: 'Change the weight of duo-b' }).click();
const w = page.getByRole('dialog', { name: 'Weight of duo-b' });
await w.getByLabel('Weight').fill('0');
await w.getByRole('button', { name: 'Save weight' }).click();
await w.locator('.field-error:not([hidden])').waitFor();
check(await w.getByLabel('Weight').getAttribute('aria-invalid') === 'true', 'weight 0 is refused on its field');
await w.getByLabel('Weight').fill('7');
await w.getByRole('button', { name: 'Save weight' }).click();
await w.waitFor({ state: 'detached' });
check((await api(ADMIN_TOKEN, 'GET', '/admin/deployments/duo-b')).body.weight === 7, 'weight 7 stored');

await page.getByRole('button', { name: 'Enable duo-a' }).click();
await page.getByRole('button', { name: 'Disable duo-a' }).waitFor();
await waitFor(async () => (await chatReq('duo')).status === 200, 'duo served again');
await page.getByRole('button', { name: 'Put duo-b back to the config file' }).click();
await page.getByRole('button', { name: 'Disable duo-b' }).waitFor();
check((await api(ADMIN_TOKEN, 'GET', '/admin/deployments/duo-b')).body.override === null, 'duo-b follows the file again');
await shot(page, 'providers');
await noSecrets(page, 'providers page');
`)
	}, withDuo)
}

// TestConsolePagesTour works the Quotas, Credits and Admin audit log pages (a refused value shown
// next to its field each time), takes a screenshot of every page of this file on a laptop, a
// phone and in dark mode, and signs in as a viewer, who sees the same pages without a single
// control that changes something and whose forged change is refused.
func TestConsolePagesTour(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		runConsolePages(t, e, `
check((await api(ADMIN_TOKEN, 'POST', '/admin/users', { id: 'tour-user', tier: 'tiny' })).status === 201, 'user created');
const { page } = await newPage();
await signIn(page, ADMIN_TOKEN);
check((await chatReq('gpt-test')).status === 200, 'a request for the overview');

// Quotas: the tier defaults, a policy (a negative limit refused on its field), the user's usage,
// a session cleared.
await openPage(page, 'quotas');
const tiers = page.getByRole('table', { name: 'Tier defaults' });
await tiers.locator('td', { hasText: 'tiny' }).waitFor();
check((await tiers.textContent()).includes('(per session)'), 'the session limits are listed');
await page.getByRole('button', { name: 'New policy' }).click();
let dlg = page.getByRole('dialog', { name: 'New policy' });
await dlg.getByLabel('Subject id').fill('tour-user');
await dlg.getByLabel('Requests a minute').fill('-3');
await dlg.getByRole('button', { name: 'Save policy' }).click();
await dlg.locator('.field-error:not([hidden])').waitFor();
check(await dlg.getByLabel('Requests a minute').getAttribute('aria-invalid') === 'true', 'rpm -3 refused on its field');
await dlg.getByLabel('Requests a minute').fill('5');
await dlg.getByLabel('Budget, USD a day').fill('1.25');
await dlg.getByRole('button', { name: 'Save policy' }).click();
await dlg.waitFor({ state: 'detached' });
const pol = await api(ADMIN_TOKEN, 'GET', '/admin/quota/policies/user/tour-user');
check(JSON.stringify(pol.body).includes('"rpm":5') && JSON.stringify(pol.body).includes('"budget_usd_per_day":"1.25"'), 'policy stored: ' + JSON.stringify(pol.body));
const prow = page.locator('tr', { hasText: 'tour-user' });
await prow.getByText('tier tiny', { exact: false }).waitFor();
check((await prow.textContent()).includes('in force: 5 rpm'), 'the tier and the limits in force beside the policy: ' + await prow.textContent());
await page.getByLabel('User id').fill('tour-user');
await page.getByRole('button', { name: 'Show usage' }).click();
await page.getByText('Requests in the current minute').waitFor();
check((await page.locator('dl.pairs').textContent()).includes('0 of 5'), 'usage against the limit');
await page.getByLabel('Session id (X-Session-Id)').fill('tour-session');
await page.getByRole('button', { name: 'Clear session' }).click();
await waitFor(async () => (await api(ADMIN_TOKEN, 'GET', '/admin/audit-log?action=quota_session.clear')).body.data.length === 1, 'the session clear in the audit log');
await shot(page, 'quotas');
await noSecrets(page, 'quotas page');

// Credits: no account yet; a bad top-up on its field; a top-up and an adjustment; the ledger.
await openPage(page, 'credits');
await page.getByLabel('Subject id').fill('tour-user');
await page.getByRole('button', { name: 'Show' }).click();
await page.getByText('has no credit account yet').waitFor();
await page.getByLabel('Top up: amount (USD)').fill('-2');
await page.getByRole('button', { name: 'Top up', exact: true }).click();
await page.locator('.field-error:not([hidden])').waitFor();
check(await page.getByLabel('Top up: amount (USD)').getAttribute('aria-invalid') === 'true', 'a negative top-up refused on its field');
await page.getByLabel('Top up: amount (USD)').fill('5');
await page.getByLabel('Top up: note').fill('welcome');
await page.getByRole('button', { name: 'Top up', exact: true }).click();
await page.locator('[data-balance="5"]').waitFor();
await page.getByLabel('Adjust: amount (USD)').fill('-1.5');
await page.getByRole('button', { name: 'Adjust', exact: true }).click();
await page.locator('[data-balance="3.5"]').waitFor();
await settle(page);
const ledger = page.getByRole('table', { name: 'Ledger' });
check(await ledger.locator('tbody tr').count() === 2 && (await ledger.textContent()).includes('welcome'), 'the ledger lists both: ' + await ledger.textContent());
check(page.url().includes('id=tour-user'), 'the subject is in the route');
// The balances list has it; a row opens its account.
const balances = page.getByRole('table', { name: 'Balances' });
await balances.locator('td', { hasText: '$3.5' }).waitFor();
await openPage(page, 'credits');
await page.getByRole('button', { name: 'Open the account of user tour-user' }).click();
await page.locator('[data-balance="3.5"]').waitFor();
await settle(page);
await shot(page, 'credits');
await noSecrets(page, 'credits page');

// Admin audit log: the changes above, each with its before and after.
await openPage(page, 'audit-log');
const entry = page.locator('tr', { hasText: 'credit.adjust' });
await entry.waitFor();
await entry.getByRole('button', { name: /^Before and after/ }).click();
dlg = page.getByRole('dialog', { name: 'credit.adjust user/tour-user' });
await dlg.waitFor();
const change = await dlg.textContent();
check(change.includes('"balance_usd": "5"') && change.includes('"balance_usd": "3.5"'), 'before and after: ' + change);
await shot(page, 'audit-log-entry');
await dlg.getByRole('button', { name: 'Close' }).click();
await page.getByLabel('Action').fill('quota_policy.');
await page.getByRole('button', { name: 'Search' }).click();
await page.waitForFunction(() => location.hash.includes('action=quota_policy.'));
await settle(page);
check(await page.locator('tbody tr', { hasText: 'credit.' }).count() === 0 && await page.locator('tbody tr', { hasText: 'quota_policy.put' }).count() === 1, 'filtered by action');
await shot(page, 'audit-log');
await noSecrets(page, 'audit log page');

// Every page of this file, on a laptop, on a phone and in the dark.
for (const id of ['overview', 'quotas', 'pricing', 'providers', 'usage', 'credits', 'audit-log']) {
  await openPage(page, id);
  await shot(page, 'laptop-' + id);
}
const phone = await newPage({ width: 390, height: 844 });
// On a phone the navigation is folded behind the Menu button, which signIn does not wait for.
await phone.page.goto(ADMIN + '/console/#/overview');
await phone.page.getByLabel('Admin token').fill(ADMIN_TOKEN);
await phone.page.getByLabel('Admin token').press('Enter');
await phone.page.getByRole('button', { name: 'Menu' }).waitFor();
await openPage(phone.page, 'overview');
await phone.page.locator('svg.chart').first().waitFor();
check(await phone.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'the overview fits a phone\'s width');
await shot(phone.page, 'phone-overview');
await openPage(phone.page, 'usage');
await shot(phone.page, 'phone-usage');
const dark = await newPage({ colorScheme: 'dark' });
await signIn(dark.page, ADMIN_TOKEN);
await openPage(dark.page, 'overview');
await dark.page.locator('svg.chart').first().waitFor();
await shot(dark.page, 'dark-overview');

// A viewer sees every page and no control that changes something; a forged change is refused.
const viewer = (await api(ADMIN_TOKEN, 'POST', '/admin/tokens', { name: 'tour-viewer', role: 'viewer' })).body.token;
secrets.add(viewer);
const v = await newPage();
await signIn(v.page, viewer);
for (const id of ['overview', 'quotas', 'pricing', 'providers', 'usage', 'credits', 'audit-log']) {
  await openPage(v.page, id);
  if (id === 'credits') {
    await v.page.getByLabel('Subject id').fill('tour-user');
    await v.page.getByRole('button', { name: 'Show' }).click();
    await v.page.locator('[data-balance="3.5"]').waitFor();
  }
  const controls = await pageControls(v.page);
  check(controls.length === 0, 'the viewer sees no change control on ' + id + ': ' + controls.join(', '));
  await noSecrets(v.page, 'viewer on ' + id);
}
await shot(v.page, 'viewer-credits');
const forged = await v.page.evaluate(async () => {
  const s = await (await fetch('/admin/session')).json();
  const r = await fetch('/admin/pricing/gpt-test', { method: 'PUT', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token },
    body: JSON.stringify({ input_per_million: '0', output_per_million: '0' }) });
  return r.status;
});
check(forged === 403, 'a viewer\'s forged price change is refused: ' + forged);
`)
	})
}

// TestConsolePagesTenantScope: a token scoped to one tenant sees that tenant's usage only in the
// overview (no tenant ranking) and the usage audit (no tenant filter), and its policies only;
// asking the API for another tenant's statistics through its session is refused.
func TestConsolePagesTenantScope(t *testing.T) {
	e := newEnv(t)
	c := newAdmClient(t, e)
	c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "scoped", "name": "Scoped"})
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "scoped-user", "tenant_id": "scoped"})
	own := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "scoped-key", "user_id": "scoped-user"}).JSON("key").String()
	c.Must(200, "PUT", "/admin/quota/policies/user/scoped-user", map[string]any{"rpm": 50})
	c.Must(200, "PUT", "/admin/quota/policies/tenant/default", map[string]any{"rpm": 70})
	token := c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "scoped-admin", "role": "admin", "tenant_id": "scoped"}).JSON("token").String()
	runConsole(t, e, consolePagesHelpers+`
const OWN = process.env.CONSOLE_OWN_KEY;
const TOKEN = process.env.CONSOLE_SCOPED_TOKEN;
secrets.add(OWN);
secrets.add(TOKEN);
const theirs = await chatReq('gpt-test');
const mine = await fetch(PUBLIC + '/v1/chat/completions', { method: 'POST', headers: { Authorization: 'Bearer ' + OWN, 'Content-Type': 'application/json' },
  body: JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] }) });
await mine.text();
const mineID = mine.headers.get('x-request-id');
await record(theirs.id);
await record(mineID);

const { page } = await newPage();
await signIn(page, TOKEN);
await openPage(page, 'overview');
await page.getByRole('table', { name: 'Top users' }).waitFor();
check(await page.getByRole('table', { name: 'Top tenants' }).count() === 0, 'no tenant ranking for a scoped token');
const users = await page.getByRole('table', { name: 'Top users' }).textContent();
check(users.includes('scoped-user') && !users.includes('(none)'), 'only the tenant\'s users: ' + users);
check(/Requests\s*1(?!\d)/.test(await page.locator('.stats').textContent()), 'one request of the tenant: ' + await page.locator('.stats').textContent());
await shot(page, 'scoped-overview');

await openPage(page, 'usage');
await page.locator('button[title="' + mineID + '"]').waitFor();
check(await page.locator('button[title="' + theirs.id + '"]').count() === 0, 'another tenant\'s request is not listed');
check(await page.getByLabel('Tenant').count() === 0, 'no tenant filter for a scoped token');

await openPage(page, 'quotas');
const pol = page.getByRole('table', { name: 'Quota policies' });
await pol.locator('td', { hasText: 'scoped-user' }).waitFor();
check(!(await pol.textContent()).includes('tenant default'), 'not the default tenant\'s policy');
await noSecrets(page, 'scoped pages');

const refused = await page.evaluate(() => fetch('/admin/usage/top?by=user&tenant_id=default').then((r) => r.json().then((b) => [r.status, b.error.param])));
check(refused[0] === 403 && refused[1] === 'tenant_id', 'another tenant\'s statistics refused: ' + JSON.stringify(refused));
`, "CONSOLE_KEY="+e.key, "CONSOLE_OWN_KEY="+own, "CONSOLE_SCOPED_TOKEN="+token)
}

// withFlaky adds model "flaky": its first deployment's upstream refuses connections (a closed
// loopback port), so each request fails there and falls back to the mock upstream.
func withFlaky(t *testing.T) envOption {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	return func(c *Config) {
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "down", Type: "openai", BaseURL: closed, APIKey: "k"}})
		c.Models = append(c.Models, providers.ModelConfig{Name: "flaky", Deployments: []providers.DeploymentConfig{
			{ID: "flaky-a", Provider: "down", Model: "m", Priority: 0}, {ID: "flaky-b", Provider: "up", Model: "flaky-b-model", Priority: 1}}})
	}
}

// TestConsolePagesProviderHealth: the Providers page shows each deployment's health as the admin
// API reports it: breaker state, mean time to first token, successes and failures, and the last
// failure's time and message.
func TestConsolePagesProviderHealth(t *testing.T) {
	e := newEnv(t, withFlaky(t))
	runConsolePages(t, e, `
const { page } = await newPage();
await signIn(page, ADMIN_TOKEN);
for (let i = 0; i < 3; i++) check((await chatReq('flaky')).status === 200, 'flaky is served by its fallback');
const deps = (await api(ADMIN_TOKEN, 'GET', '/admin/deployments')).body.data;
const a = deps.find((d) => d.id === 'flaky-a'), b = deps.find((d) => d.id === 'flaky-b');
check(a.health.failed >= 1 && a.health.last_failure && a.health.last_failure.reason, 'the API knows flaky-a failed: ' + JSON.stringify(a.health));
check(b.health.succeeded >= 1, 'the API knows flaky-b served: ' + JSON.stringify(b.health));
await openPage(page, 'providers');
const cells = async (id) => page.locator('tr', { has: page.locator('code', { hasText: new RegExp('^' + id + '$') }) }).locator('td').allTextContents();
const heads = await page.locator('table thead th').allTextContents();
const col = (name) => heads.indexOf(name);
for (const d of [a, b]) {
  const row = await cells(d.id);
  check(row[col('Breaker')] === d.health.breaker, d.id + ' breaker ' + row[col('Breaker')] + ', API ' + d.health.breaker);
  const ttft = d.health.ttft_ms_avg ? Math.round(d.health.ttft_ms_avg) + ' ms' : '—';
  check(row[col('TTFT')] === ttft, d.id + ' TTFT ' + row[col('TTFT')] + ', API ' + d.health.ttft_ms_avg);
  check(row[col('OK / failed')] === d.health.succeeded + ' / ' + d.health.failed, d.id + ' counts ' + row[col('OK / failed')]);
}
const failure = (await cells('flaky-a'))[col('Last failure')];
check(failure.includes(a.health.last_failure.reason) && /\d/.test(failure), 'flaky-a last failure shows time and message: ' + failure);
check((await cells('flaky-b'))[col('Last failure')] === '—', 'flaky-b has no failure');
// At a laptop's width the health is on screen, not behind a sideways scroll of the table.
const rowA = page.locator('tr', { has: page.locator('code', { hasText: /^flaky-a$/ }) });
for (const name of ['Breaker', 'TTFT', 'OK / failed', 'Last failure']) {
  const box = await rowA.locator('td').nth(col(name)).boundingBox();
  check(box && box.x + box.width <= 1280, name + ' of flaky-a is on screen at 1280 px: ' + JSON.stringify(box));
}
await shot(page, 'providers-health');
await noSecrets(page, 'providers health');
`)
}
