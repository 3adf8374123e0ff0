package main

import (
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsoleScreenshots takes the screenshots committed under docs/console/ (run it with
// LLMGATE_CONSOLE_SHOTS=dir and copy the *-docs-*.png files): a 1280×800 window (375×800 for the
// phone), priced traffic from several users and tenants so the overview shows money, a
// deployment that fails so the Providers page shows a failure, and no toast or dialog left on
// screen except in the shot that is of a dialog. Each PNG stays under 150 KB.
func TestConsoleScreenshots(t *testing.T) {
	e := newEnv(t, withFlaky(t))
	c := newAdmClient(t, e)
	c.Must(200, "PUT", "/admin/pricing/gpt-test", map[string]any{"input_per_million": "2000", "output_per_million": "6000"})
	var keys []string
	for _, tn := range []struct{ tenant, name string }{{"acme", "Acme Corp"}, {"globex", "Globex"}} {
		c.Must(201, "POST", "/admin/tenants", map[string]any{"id": tn.tenant, "name": tn.name, "limits": map[string]any{"rpm": 600}})
	}
	for _, u := range []struct{ id, tenant string }{{"alice", "acme"}, {"bob", "acme"}, {"carol", "globex"}} {
		c.Must(201, "POST", "/admin/users", map[string]any{"id": u.id, "tenant_id": u.tenant, "email": u.id + "@example.com"})
		keys = append(keys, c.Must(201, "POST", "/admin/keys", map[string]any{"name": u.id + "-laptop", "user_id": u.id,
			"limits": map[string]any{"rpm": 60, "budget_usd_per_month": "25"}}).JSON("key").String())
	}
	c.Must(201, "POST", "/admin/keys", map[string]any{"name": "batch-jobs", "tenant_id": "globex", "models": []string{"gpt-test"}})
	dir := consoleShots(t)
	runConsole(t, e, consolePagesHelpers+consoleScreenshots, "CONSOLE_KEY="+e.key, "CONSOLE_SHOTS="+dir, "CONSOLE_KEYS="+strings.Join(keys, ","))
	shots, _ := filepath.Glob(filepath.Join(dir, "*-docs-*.png"))
	if len(shots) < 9 {
		t.Fatalf("docs screenshots: %v", shots)
	}
	for _, f := range shots {
		if st, err := os.Stat(f); err != nil || st.Size() > 150<<10 {
			t.Errorf("%s: %d bytes, want at most 150 KB (%v)", filepath.Base(f), st.Size(), err)
		}
	}
}

const consoleScreenshots = `
const KEYS = process.env.CONSOLE_KEYS.split(',');
for (const k of KEYS) secrets.add(k);
// docShot is a screenshot of the window as it is (not the whole page): toasts are dismissed and
// no dialog may be open unless the shot is of one.
async function docShot(page, name, opts = {}) {
  await page.evaluate(() => { for (const t of document.querySelectorAll('#toasts > *')) t.remove(); });
  const open = await page.locator('dialog[open]').count();
  check(opts.dialog ? open === 1 : open === 0, name + ': ' + open + ' dialogs open');
  check(await page.locator('#toasts > *').count() === 0, name + ': a toast is on screen');
  const file = path.join(SHOTS, process.env.CONSOLE_PREFIX + '-docs-' + name + '.png');
  if (opts.full) {
    // The page down to a section (or its end), at most 1,400 px: the overview's top tables are
    // below the window's fold.
    // opts.until names a section the shot ends below.
    const size = await page.evaluate((until) => {
      const s = until && [...document.querySelectorAll('section')].find((x) => x.textContent.startsWith(until));
      return [window.innerWidth, s ? s.getBoundingClientRect().bottom + window.scrollY + 16 : document.documentElement.scrollHeight];
    }, opts.until || '');
    await page.screenshot({ path: file, fullPage: true, clip: { x: 0, y: 0, width: size[0], height: Math.min(Math.ceil(size[1]), 1400) } });
  } else {
    await page.screenshot({ path: file });
  }
}
// Traffic: a few priced requests from each user, and some to the model whose first deployment fails.
for (let i = 0; i < KEYS.length; i++) for (let n = 0; n <= i * 2; n++) check(await chat(KEYS[i]) === 200, 'chat ' + i);
for (let i = 0; i < 3; i++) check((await chatReq('flaky')).status === 200, 'flaky served by its fallback');
await waitFor(async () => ((await api(ADMIN_TOKEN, 'GET', '/admin/audit?size=100')).body.data || []).length >= 12, 'the usage records');

const { page } = await newPage({ height: 800 });
await page.goto(ADMIN + '/console/');
await page.getByLabel('Admin token').waitFor();
await docShot(page, 'sign-in');
await signIn(page, ADMIN_TOKEN);
check(page.url().endsWith('#/overview'), 'lands on the overview');
const spend = await page.locator('.stat', { hasText: 'Spend' }).locator('.stat-value').textContent();
check(spend !== '$0' && spend.startsWith('$'), 'the overview shows spend: ' + spend);
const topSpend = await page.locator('section', { hasText: 'Top users by spend' }).locator('tbody tr').first().locator('td').last().textContent();
check(topSpend !== '$0', 'top users show money: ' + topSpend);
await docShot(page, 'overview', { full: true, until: 'Top tenants by spend' });

await openPage(page, 'keys');
await docShot(page, 'keys');
await page.getByRole('button', { name: 'New key' }).click();
const dlg = page.getByRole('dialog', { name: 'New API key' });
await dlg.getByLabel('Name', { exact: true }).fill('ci-runner');
await dlg.getByLabel('Models').fill('gpt-test');
await dlg.getByRole('button', { name: 'Create key' }).click();
const shown = page.locator('dialog input.secret');
await shown.waitFor();
secrets.add(await shown.inputValue());
await docShot(page, 'key-created', { dialog: true });
await page.getByRole('button', { name: 'I have copied it' }).click();
await page.locator('dialog').waitFor({ state: 'detached' });
await settle(page);

await openPage(page, 'providers');
await docShot(page, 'providers');
await openPage(page, 'usage');
// A record's cost is on screen at a laptop's width, not behind a sideways scroll.
const costHead = await page.locator('table thead th', { hasText: /^Cost$/ }).boundingBox();
check(costHead && costHead.x + costHead.width <= 1280, 'the usage audit\'s Cost column is on screen at 1280 px: ' + JSON.stringify(costHead));
await docShot(page, 'usage');
await noSecrets(page, 'docs shots');

const dark = await newPage({ height: 800, colorScheme: 'dark' });
await signIn(dark.page, ADMIN_TOKEN);
await openPage(dark.page, 'keys');
await docShot(dark.page, 'keys-dark');

const phone = await newPage({ width: 375, height: 800 });
await signIn(phone.page, ADMIN_TOKEN);
await docShot(phone.page, 'overview-phone');
await openPage(phone.page, 'keys');
await docShot(phone.page, 'keys-phone');
`

// TestConsoleScreenshotsCommitted: the screenshots under docs/console/ are small, of a laptop
// (1280 px) or a phone (375 px) window at most 1,400 px tall, each shown in docs/console.md, and
// the README shows the overview, the keys and the providers.
func TestConsoleScreenshotsCommitted(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "console", "*.png"))
	if len(files) == 0 {
		t.Fatal("no screenshots under docs/console")
	}
	guide, err := os.ReadFile(filepath.Join("..", "..", "docs", "console.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 150<<10 {
			t.Errorf("%s: %d bytes, want at most 150 KB", name, st.Size())
		}
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := image.DecodeConfig(r)
		r.Close()
		if err != nil || (cfg.Width != 1280 && cfg.Width != 375) || cfg.Height > 1400 {
			t.Errorf("%s: %dx%d (%v), want 1280 or 375 wide and at most 1400 tall", name, cfg.Width, cfg.Height, err)
		}
		if !strings.Contains(string(guide), "(console/"+name+")") {
			t.Errorf("%s is not shown in docs/console.md", name)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"overview.png", "keys.png", "providers.png"} {
		if !strings.Contains(string(readme), "(docs/console/"+name+")") {
			t.Errorf("the README does not show docs/console/%s", name)
		}
	}
}
