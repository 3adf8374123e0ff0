package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The console's browser tests drive Debian's chromium with playwright-core (both installed by
// scripts/test.sh; playwright cannot download a browser here) against a real gateway: the env's
// admin listener serves the console, its public listener the API, a mock upstream on loopback
// answers. Each test is a Node script made of consolePrelude (helpers, below) and its own body;
// runConsole runs it and fails the test unless it ends with CONSOLE-OK. A test of another page
// writes its own body the same way:
//
//	out := runConsole(t, e, `
//	  const { page } = await newPage();
//	  await signIn(page, ADMIN_TOKEN);
//	  await openPage(page, 'usage');
//	  await shot(page, 'usage');
//	  await noSecrets(page, 'usage page');
//	`)
//
// Helpers of the prelude: newPage({width, height, colorScheme}) → {context, page};
// signIn(page, token); openPage(page, id) (waits for its tables to load); shot(page, name)
// (a full-page PNG in the screenshot directory, toasts dismissed); noSecrets(page, what) (no
// known secret — the admin token, every secret added to `secrets`, the session cookie, the CSRF
// token — in the page's HTML, URL, form fields, localStorage, sessionStorage or document.cookie);
// mutationControls(page) (the labels of every button that would change something); api(token,
// method, path, body) → {status, body} and chat(key) → status, straight from Node;
// waitFor(fn, what) polls an async condition; check(cond, what). ADMIN, PUBLIC and ADMIN_TOKEN
// name the gateway. JavaScript errors and CSP violations in any page fail the test.

// consoleTools finds chromium and playwright-core: missing ones skip the test, or fail it in CI.
func consoleTools(t *testing.T) (sdkDir, chromium string) {
	t.Helper()
	sdkDir = nodeSDKDir(t)
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: run the suite through scripts/test.sh, which installs it", what)
		}
		t.Skipf("%s (scripts/test.sh installs it)", what)
	}
	if _, err := os.Stat(filepath.Join(sdkDir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core is not installed in " + sdkDir)
	}
	chromium = os.Getenv("LLMGATE_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("no chromium at " + chromium)
	}
	return sdkDir, chromium
}

// consoleShots is where screenshots go: $LLMGATE_CONSOLE_SHOTS when set (kept), else a temporary
// directory of the test.
func consoleShots(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("LLMGATE_CONSOLE_SHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// runConsole runs consolePrelude + body against the env's gateway with node, for at most three
// minutes, and returns what the script printed. env adds NAME=value pairs the body reads from
// process.env.
func runConsole(t *testing.T, e *env, body string, env ...string) string {
	t.Helper()
	sdkDir, chromium := consoleTools(t)
	f := filepath.Join(sdkDir, "console-"+strings.ReplaceAll(t.Name(), "/", "_")+".mjs")
	script := consolePrelude + "\ntry {\n" + body + "\n} finally {\n  await browser.close();\n}\nfinish();\n"
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", f)
	cmd.Env = append(os.Environ(), "LLMGATE_CHROMIUM="+chromium, "CONSOLE_ADMIN="+e.app.adminURL,
		"CONSOLE_PUBLIC="+e.app.publicURL, "CONSOLE_ADMIN_TOKEN="+testAdminToken, "CONSOLE_SHOTS="+consoleShots(t),
		"CONSOLE_PREFIX="+strings.ReplaceAll(t.Name(), "/", "_"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nCONSOLE-OK\n") {
		t.Fatalf("console script failed: %v\n%s", err, out)
	}
	return string(out)
}

// consolePrelude is the start of every console script. It has no backquotes (it lives in a Go
// raw string).
const consolePrelude = `
import { chromium } from 'playwright-core';
import path from 'node:path';

const ADMIN = process.env.CONSOLE_ADMIN;
const PUBLIC = process.env.CONSOLE_PUBLIC;
const ADMIN_TOKEN = process.env.CONSOLE_ADMIN_TOKEN;
const SHOTS = process.env.CONSOLE_SHOTS;
const secrets = new Set([ADMIN_TOKEN]);
const problems = [];

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

const browser = await chromium.launch({
  executablePath: process.env.LLMGATE_CHROMIUM,
  headless: true,
  // Playwright gives every launch a fresh temporary profile (its own --user-data-dir).
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function newPage(opts = {}) {
  const context = await browser.newContext({
    viewport: { width: opts.width || 1280, height: opts.height || 860 },
    colorScheme: opts.colorScheme || 'light',
    reducedMotion: 'reduce',
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push('JavaScript error: ' + e.message));
  page.on('console', (m) => {
    const text = m.text();
    // The shell's first GET /admin/session is 401 before a sign-in; refusals a test provokes are
    // answered 4xx too. Anything else the browser reports as an error is a fault.
    if (m.type() === 'error' && !/status of 40[0-9]/.test(text)) problems.push('console error: ' + text);
    if (/Content Security Policy/i.test(text)) problems.push('CSP violation: ' + text);
  });
  return { context, page };
}

async function settle(page) {
  await page.waitForFunction(() => ![...document.querySelectorAll('.page-status')].some((e) => e.textContent === 'Loading…'));
}

async function signIn(page, token) {
  await page.goto(ADMIN + '/console/');
  await page.getByLabel('Admin token').fill(token);
  await page.getByLabel('Admin token').press('Enter');
  await page.locator('nav#nav').waitFor({ state: 'attached' });
  for (const c of await page.context().cookies()) if (c.name === 'llmgate_console') secrets.add(c.value);
  const s = await page.evaluate(() => fetch('/admin/session').then((r) => r.json()));
  check(s.csrf_token, 'GET /admin/session answers the CSRF token');
  secrets.add(s.csrf_token);
  await settle(page);
}

async function openPage(page, id) {
  await page.evaluate((h) => { location.hash = h; }, '#/' + id);
  await page.locator('.page[data-page="' + id + '"]:not([aria-busy])').waitFor();
  await settle(page);
}

let shotNo = 0;
async function shot(page, name) {
  shotNo += 1;
  // A toast of an earlier step would cover the page: dismiss them (they go after seconds anyway).
  await page.evaluate(() => { for (const t of document.querySelectorAll('#toasts > *')) t.remove(); });
  await page.screenshot({ path: path.join(SHOTS, process.env.CONSOLE_PREFIX + '-' + String(shotNo).padStart(2, '0') + '-' + name + '.png'), fullPage: true });
}

async function noSecrets(page, what) {
  const dump = await page.evaluate(() => {
    const store = (st) => { const o = {}; for (let i = 0; i < st.length; i++) { const k = st.key(i); o[k] = st.getItem(k); } return JSON.stringify(o); };
    const fields = [...document.querySelectorAll('input, textarea, select')].map((i) => i.value);
    return [document.documentElement.outerHTML, location.href, store(localStorage), store(sessionStorage), document.cookie, ...fields].join('\n');
  });
  for (const s of secrets) {
    if (s && dump.includes(s)) throw new Error(what + ': a secret (' + s.slice(0, 6) + '…) is in the page HTML, the URL, a field, the storage or document.cookie');
  }
  check(!(await page.evaluate(() => document.cookie)).includes('llmgate_console'), what + ': the session cookie is readable by script');
}

async function mutationControls(page) {
  return page.evaluate(() => [...document.querySelectorAll('button')]
    .map((b) => b.textContent.trim())
    .filter((t) => /^(New |Edit|Rotate|Revoke|Delete|Save|Create)/.test(t)));
}

async function api(token, method, p, body) {
  const res = await fetch(ADMIN + p, { method, headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, body: json };
}

async function chat(key) {
  const res = await fetch(PUBLIC + '/v1/chat/completions', { method: 'POST',
    headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: 'hello from the console test' }] }) });
  await res.text();
  return res.status;
}

async function waitFor(fn, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function finish() {
  if (problems.length) {
    console.log(problems.join('\n'));
    process.exit(1);
  }
  console.log('\nCONSOLE-OK');
}
`
