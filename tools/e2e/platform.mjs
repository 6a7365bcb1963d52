// What the walks against a whole platform (`cargo xtask dev --smoke`: real Keycloak, real
// Jupyter on the real node) share: the accounts by part, logging in and out through Keycloak's
// form, kubectl as the platform admin (what the browser cannot see: the objects themselves),
// the CSRF token a page carries, and answers' status codes.
//
// Inputs (tools/e2e/run.mjs reads them into `t.config.platform`):
//   BERTH_E2E_ACCOUNTS    JSON {"owner": {"user", "password"}, "member": …, "groupMember": …,
//                         "viewer": …, "outsider": …, "group": "<Keycloak group of groupMember>"}
//   BERTH_E2E_KUBECONFIG  the platform admin's kubeconfig (kubectl on PATH)
//   BERTH_E2E_SAMPLE      JSON {"project", "notebook", "model"}: the sample project the viewer
//                         views and the outsider is kept out of
//   BERTH_E2E_PROJECT     the project the owner creates (default: e2e-<time>, unique per run)
//   BERTH_E2E_PLACEMENT   JSON of annotations for that project's namespace (the dev platform puts
//                         notebooks on its real node with them), optional

import { execFileSync } from 'node:child_process';

import { check } from './harness.mjs';
import { onLoginForm, submit } from './scenarios/login.mjs';

/** The platform part of the configuration, or null when its inputs are absent. */
export function platformConfig(env) {
  if (!env.BERTH_E2E_ACCOUNTS) return null;
  const accounts = JSON.parse(env.BERTH_E2E_ACCOUNTS);
  const sample = JSON.parse(env.BERTH_E2E_SAMPLE || '{}');
  return {
    accounts,
    kubeconfig: env.BERTH_E2E_KUBECONFIG || '',
    sample: {
      project: sample.project || 'fraud-detection',
      notebook: sample.notebook || 'lab',
      model: sample.model || 'fraud-scorer',
    },
    project: env.BERTH_E2E_PROJECT || `e2e-${Date.now().toString(36)}`,
    placement: env.BERTH_E2E_PLACEMENT ? JSON.parse(env.BERTH_E2E_PLACEMENT) : {},
  };
}

/** The platform configuration of `t`, failing the scenario clearly without it. */
export function platform(t) {
  check(
    t.config.platform,
    'this scenario needs a platform: BERTH_E2E_ACCOUNTS (and BERTH_E2E_KUBECONFIG, BERTH_E2E_SAMPLE); `cargo xtask dev --smoke` sets them',
  );
  return t.config.platform;
}

/** The account of `part` (owner, member, groupMember, viewer, outsider). */
export function account(t, part) {
  const found = platform(t).accounts[part];
  check(found?.user && found?.password, `BERTH_E2E_ACCOUNTS has no ${part} (user and password)`);
  return found;
}

/** `kubectl <args>` as the platform admin; its stdout. Throws with kubectl's stderr. */
export function kubectl(t, args, input) {
  const { kubeconfig } = platform(t);
  check(kubeconfig, 'BERTH_E2E_KUBECONFIG is not set: the walks check objects as the platform admin');
  try {
    return execFileSync('kubectl', args, {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 30_000,
    });
  } catch (e) {
    throw new Error(`kubectl ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`);
  }
}

/** The object `kind/name` (in `namespace`, if given) as JSON, read as the platform admin. */
export function getObject(t, kind, name, namespace) {
  const args = ['get', kind, name, '-o', 'json'];
  if (namespace) args.push('-n', namespace);
  return JSON.parse(kubectl(t, args));
}

/** Polls `probe` (sync or async, truthy = done) every 500 ms for up to `seconds`. */
export async function until(seconds, what, probe) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${seconds} s${last ? ` (last: ${last.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Logs `who` in from the console's `/` through Keycloak's form; ends on a console page that
 * names them.
 */
export async function logIn(t, page, who) {
  const origin = new URL(t.config.consoleUrl).origin;
  await page.goto(`${t.config.consoleUrl}/`);
  if (!(await onLoginForm(page))) {
    const link = page.getByRole('link', { name: /log ?in/i });
    check((await link.count()) > 0, `without a session, / neither sent the browser to log in nor offered "Log in": ${page.url()}`);
    await link.first().click();
  }
  await page.locator('#username').waitFor({ state: 'visible' });
  check(new URL(page.url()).origin !== origin, `the login form is the console's own: ${page.url()}`);
  await t.shot(`keycloak login form for ${who.user}`, page);
  await submit(page, who.user, who.password);
  await page.waitForURL((url) => url.origin === origin);
  await page.waitForLoadState('load');
  const shown = await page.locator('header .who').innerText();
  check(
    shown.toLowerCase().includes(who.user.toLowerCase()),
    `after the login the console names "${shown}", not ${who.user}`,
  );
}

/** Logs out with the page's "Log out" and checks that `/` then asks to log in again. */
export async function logOut(t, page) {
  const origin = new URL(t.config.consoleUrl).origin;
  await page.getByRole('link', { name: /log ?out/i }).first().click();
  await page.waitForURL((url) =>
    (url.origin === origin && !url.pathname.startsWith('/logout'))
    || (url.origin !== origin && url.pathname.endsWith('/protocol/openid-connect/auth')));
  await page.waitForLoadState('load');
  await page.goto(`${t.config.consoleUrl}/`);
  if (!(await onLoginForm(page))) {
    const link = page.getByRole('link', { name: /log ?in/i });
    check((await link.count()) > 0, `after the logout, / neither asks to log in nor offers "Log in": ${page.url()}`);
    await link.first().click();
  }
  await page.locator('#username').waitFor({ state: 'visible' });
}

/** Opens `path` of the console; checks and returns the final answer's status. */
export async function open(t, page, path, expected = 200) {
  const answer = await page.goto(path.startsWith('http') ? path : `${t.config.consoleUrl}${path}`);
  const status = answer?.status();
  check(status === expected, `GET ${path} answered ${status}, not ${expected}`);
  return status;
}

/** The CSRF token in the forms of the page open in `page` (null when it has no form). */
export async function csrfOf(page) {
  const field = page.locator('input[name=csrf]');
  return (await field.count()) > 0 ? field.first().inputValue() : null;
}

/** The number of forms that POST, and of buttons, inside the page's content (not the nav). */
export async function editControls(page) {
  return page.locator('main form[method=post], main button').count();
}

/** POSTs `fields` to the console's `path` from inside the page (same origin, its cookies). */
export async function postFromPage(page, path, fields) {
  return page.evaluate(async ({ path, fields }) => {
    const answer = await fetch(path, {
      method: 'POST',
      body: new URLSearchParams(fields),
      redirect: 'manual',
    });
    return { status: answer.status, text: await answer.text() };
  }, { path, fields });
}

/**
 * The SHA-256 (base64) of the public key of the certificate `url` (https) serves, after Node
 * has verified it against the CA in `caFile`: what Chromium's
 * `--ignore-certificate-errors-spki-list` takes, so that the browser accepts exactly that
 * server's certificate (the dev platform's Keycloak, whose CA is the platform's own) and no other.
 */
export async function verifiedSpki(url, caFile) {
  const { connect } = await import('node:tls');
  const { readFileSync } = await import('node:fs');
  const { X509Certificate, createHash } = await import('node:crypto');
  const at = new URL(url);
  const raw = await new Promise((resolve, reject) => {
    const socket = connect({
      host: at.hostname,
      port: Number(at.port || 443),
      servername: /^[\d.]+$/.test(at.hostname) ? undefined : at.hostname,
      ca: readFileSync(caFile),
      rejectUnauthorized: true,
    }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert.raw);
    });
    socket.on('error', reject);
  });
  const spki = new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}
