// The browser tests' harness: one Chromium (Debian's, from tools/chromium.sh) driven by
// playwright-core; each scenario in a fresh browser context (no cookie or storage of another);
// steps that print progress and screenshot the page they end on; a failure that says where the
// browser was, what the page said and where its screenshot is.
//
// A scenario is `{ name, description, run(t) }`; `t` (a Scenario below) gives `t.page`,
// `t.step(title, fn)`, `t.shot(label)`, `t.check(condition, message)`, `t.newContext()` and the
// inputs in `t.config`.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** How long one step's page actions may wait (ms): Keycloak's first page can take seconds. */
const ACTION_TIMEOUT_MS = 30_000;

/** A failed expectation: the message says what was expected and what was there. */
export class CheckFailed extends Error {}

/** Fails the step with `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

/** The visible text of `page`, at most `limit` characters (for failure reports). */
export async function pageText(page, limit = 2000) {
  try {
    const text = await page.locator('body').innerText({ timeout: 5_000 });
    const squeezed = text.replace(/\n\s*\n+/g, '\n').trim();
    return squeezed.length > limit ? `${squeezed.slice(0, limit)}...` : squeezed;
  } catch (e) {
    return `(no text: ${e.message.split('\n')[0]})`;
  }
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'page';
}

const elapsed = (since) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** One scenario's run: its context, page, screenshots and steps. */
class Scenario {
  constructor(browser, scenario, config) {
    this.browser = browser;
    this.name = scenario.name;
    this.config = config;
    this.dir = join(config.artifacts, scenario.name);
    this.shots = [];
    this.contexts = [];
    this.stepNumber = 0;
  }

  /** A fresh browser context (its own cookies); the scenario's first one is `t.page`'s. */
  async newContext() {
    const context = await this.browser.newContext({
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
    });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
    this.contexts.push(context);
    const page = await context.newPage();
    retryOnNetworkChange(page);
    this.page = page;
    return page;
  }

  /** Screenshots the current page (full page) to `<dir>/NN-<label>.png`; returns the path. */
  async shot(label, page = this.page) {
    const path = join(this.dir, `${String(this.shots.length + 1).padStart(2, '0')}-${slug(label)}.png`);
    await page.screenshot({ path, fullPage: true });
    this.shots.push(path);
    return path;
  }

  /** Runs one step: prints it, runs `fn`, screenshots the page it ends on (named after it). */
  async step(title, fn) {
    this.stepNumber += 1;
    const begin = Date.now();
    console.log(`[e2e] ${this.name} ${this.stepNumber}. ${title}`);
    const result = await fn(this.page);
    const path = await this.shot(title);
    console.log(`[e2e] ${this.name} ${this.stepNumber}. ok in ${elapsed(begin)}: ${this.page.url()} (${path})`);
    return result;
  }

  check(condition, message) {
    check(condition, message);
  }

  async close() {
    for (const context of this.contexts) await context.close().catch(() => {});
  }
}

/** Launches Chromium; `sandbox` false only where it cannot run (as root). */
export async function launch(config) {
  return chromium.launch({
    executablePath: config.chromium,
    headless: true,
    chromiumSandbox: config.sandbox,
    // The tests' own loopback services, never a proxy from the environment.
    args: [
      '--no-proxy-server',
      '--disable-dev-shm-usage',
      // The identity provider's certificate, verified against its CA by run.mjs, where the
      // platform has a CA of its own (BERTH_E2E_IDP_CA_FILE).
      ...(config.trustedSpki?.length ? [`--ignore-certificate-errors-spki-list=${config.trustedSpki.join(',')}`] : []),
    ],
  });
}

/**
 * Runs `scenarios` one after another in `browser`; returns the failures' count. Each one's
 * screenshots go to `<config.artifacts>/<name>/` (emptied first).
 */
export async function runAll(browser, scenarios, config) {
  let failures = 0;
  for (const scenario of scenarios) {
    const t = new Scenario(browser, scenario, config);
    rmSync(t.dir, { recursive: true, force: true });
    mkdirSync(t.dir, { recursive: true });
    const begin = Date.now();
    console.log(`[e2e] ${scenario.name}: ${scenario.description}`);
    try {
      await t.newContext();
      await scenario.run(t);
      console.log(`[e2e] ${scenario.name}: PASSED in ${elapsed(begin)}, ${t.shots.length} screenshots in ${t.dir}`);
    } catch (e) {
      failures += 1;
      let shot = '(none)';
      if (t.page) {
        shot = await t.shot('failure').catch((s) => `(no screenshot: ${s.message.split('\n')[0]})`);
      }
      const url = t.page ? t.page.url() : '(no page)';
      const text = t.page ? await pageText(t.page) : '';
      console.error(`[e2e] ${scenario.name}: FAILED in ${elapsed(begin)} at step ${t.stepNumber}`);
      console.error(`[e2e]   why: ${e instanceof CheckFailed ? e.message : e.stack || e}`);
      console.error(`[e2e]   url: ${url}`);
      console.error(`[e2e]   screenshot: ${shot}`);
      console.error(`[e2e]   the page's text:\n${text.replace(/^/gm, '[e2e]   | ')}`);
    } finally {
      await t.close();
    }
  }
  return failures;
}

/**
 * Makes `page.goto` and `page.reload` try again (up to 3 times) when Chromium aborts them with
 * `net::ERR_NETWORK_CHANGED`: on Linux it watches netlink, and the real node adding or removing a
 * pod's veth (a notebook stopping) counts as a network change for requests in flight. Any
 * other error, and a fourth one, is the walk's failure.
 */
function retryOnNetworkChange(page) {
  for (const name of ['goto', 'reload']) {
    const original = page[name].bind(page);
    page[name] = async (...args) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await original(...args);
        } catch (e) {
          if (attempt >= 4 || !String(e?.message).includes('ERR_NETWORK_CHANGED')) throw e;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
    };
  }
}
