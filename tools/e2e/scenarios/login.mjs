// A user logs in to the console through the identity provider's own login form (Keycloak; the
// console's OIDC code flow with PKCE), sees who they are at `/`, logs out, and is asked to log in
// again; a wrong password and an unknown user stay on Keycloak's page with its error and get no
// session.

import { pageText } from '../harness.mjs';

const SESSION_COOKIE = 'berth_console_session';
const INVALID = /Invalid username or password/i;

/** Whether `page` shows Keycloak's login form (any theme: the fields' ids are Keycloak's). */
export async function onLoginForm(page) {
  return (await page.locator('#kc-form-login, form:has(#username):has(#password)').count()) > 0;
}

/**
 * From a console page without a session, to the identity provider's login form: the console
 * either sends the browser there itself or offers a "Log in" link.
 */
async function toLoginForm(t, page) {
  if (!(await onLoginForm(page))) {
    const link = page.getByRole('link', { name: /log ?in/i });
    t.check(
      (await link.count()) > 0,
      `without a session, ${page.url()} neither sent the browser to log in nor offered a "Log in" link`,
    );
    await link.first().click();
  }
  await page.locator('#username').waitFor({ state: 'visible' });
  const at = new URL(page.url());
  t.check(
    at.origin !== new URL(t.config.consoleUrl).origin,
    `the login form is served by the console (${page.url()}), not by the identity provider`,
  );
  t.check(
    /\/protocol\/openid-connect\/auth|\/login-actions\//.test(at.pathname),
    `the login form is not at an OIDC authorization endpoint: ${page.url()}`,
  );
}

/** Fills Keycloak's login form and submits it. */
export async function submit(page, username, password) {
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await page.locator('#kc-login, [type=submit]').first().click();
}

/** After a refused login: still on Keycloak's form, with its error, and no console session. */
async function refused(t, page, who) {
  await page.getByText(INVALID).first().waitFor({ state: 'visible' });
  t.check(await onLoginForm(page), `after ${who}, the login form is gone: ${page.url()}`);
  t.check(
    new URL(page.url()).origin !== new URL(t.config.consoleUrl).origin,
    `after ${who}, the browser went back to the console: ${page.url()}`,
  );
  const cookies = await page.context().cookies(t.config.consoleUrl);
  t.check(
    !cookies.some((c) => c.name === SESSION_COOKIE),
    `after ${who}, the console set a session cookie`,
  );
}

async function sessionCookie(page, consoleUrl) {
  return (await page.context().cookies(consoleUrl)).find((c) => c.name === SESSION_COOKIE);
}

/** Whether the console's `/` names the user (it names a logged-in user, and nobody else). */
async function namesUser(t, page) {
  return (await pageText(page, 100_000)).toLowerCase().includes(t.config.userName.toLowerCase());
}

export default {
  name: 'login',
  description: "log in through Keycloak's form, see who you are at /, log out, and be asked to log in again; a wrong password and an unknown user are refused",
  async run(t) {
    const home = `${t.config.consoleUrl}/`;

    await t.step('open the console without a session', async (page) => {
      const answer = await page.goto(home);
      t.check(answer !== null && answer.status() < 400, `GET / answered ${answer?.status()}`);
    });

    await t.step("go to Keycloak's login form", async (page) => {
      await toLoginForm(t, page);
    });

    await t.step('a wrong password stays on the login form with its error', async (page) => {
      await submit(page, t.config.user, `${t.config.password}-wrong`);
      await refused(t, page, 'a wrong password');
    });

    await t.step('an unknown user stays on the login form with its error', async (page) => {
      await submit(page, `nobody-${Date.now()}`, t.config.password);
      await refused(t, page, 'an unknown user');
    });

    await t.step('log in with the right password', async (page) => {
      const origin = new URL(t.config.consoleUrl).origin;
      await submit(page, t.config.user, t.config.password);
      await page.waitForURL((url) => url.origin === origin);
      await page.waitForLoadState('load');
    });

    const session = await t.step('the console says who you are', async (page) => {
      if (page.url() !== home) await page.goto(home);
      t.check(
        await namesUser(t, page),
        `/ does not name the user ${t.config.userName}`,
      );
      const cookie = await sessionCookie(page, t.config.consoleUrl);
      t.check(cookie !== undefined, `no ${SESSION_COOKIE} cookie after the login`);
      t.check(cookie.httpOnly, `${SESSION_COOKIE} is not HttpOnly`);
      t.check(cookie.sameSite === 'Lax', `${SESSION_COOKIE} is SameSite=${cookie.sameSite}, not Lax`);
      t.check(
        cookie.secure === t.config.consoleUrl.startsWith('https:'),
        `${SESSION_COOKIE} is ${cookie.secure ? '' : 'not '}Secure on ${t.config.consoleUrl}`,
      );
      return cookie;
    });

    await t.step('log out', async (page) => {
      const origin = new URL(t.config.consoleUrl).origin;
      const control = page.getByRole('link', { name: /log ?out/i })
        .or(page.getByRole('button', { name: /log ?out/i }));
      if ((await control.count()) > 0) {
        await control.first().click();
      } else {
        await page.goto(`${t.config.consoleUrl}/logout`);
      }
      // Through the identity provider's end-session endpoint and back, with no question asked
      // there (the console sends the ID token as the hint): on a console page, or, where the
      // console sends a browser without a session straight to log in, on the provider's login
      // form (its authorization endpoint, not its logout page).
      await page.waitForURL((url) =>
        (url.origin === origin && !url.pathname.startsWith('/logout'))
        || (url.origin !== origin && url.pathname.endsWith('/protocol/openid-connect/auth')));
      await page.waitForLoadState('load');
      t.check(
        (await sessionCookie(page, t.config.consoleUrl)) === undefined,
        `${SESSION_COOKIE} is still in the browser after the logout`,
      );
    });

    await t.step('after the logout, / asks to log in again at Keycloak', async (page) => {
      await page.goto(home);
      t.check(!(await namesUser(t, page)), `/ still names ${t.config.userName} after the logout`);
      // Keycloak's session ended too: its form is shown, not a silent login back to the console.
      await toLoginForm(t, page);
    });

    await t.step('the old session cookie, sent again, names nobody', async () => {
      const page = await t.newContext();
      await page.context().addCookies([{
        name: session.name,
        value: session.value,
        url: t.config.consoleUrl,
      }]);
      await page.goto(home);
      if (!(await onLoginForm(page))) {
        t.check(!(await namesUser(t, page)), `the ended session still names ${t.config.userName}`);
      }
    });
  },
};
