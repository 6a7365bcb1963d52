// A link to a notebook the user may not open: the console sends the browser to log in, brings it
// back to that very path after the login (the `next` of /login), and answers 403 with a page that
// names the user and what they may not do, never a token.

import { pageText } from '../harness.mjs';
import { onLoginForm, submit } from './login.mjs';

/** A notebook path in a namespace nobody is a member of (none exists: the answer is the same). */
const PATH = '/notebook/berth-e2e-elsewhere/lab/lab';

export default {
  name: 'notebook-link',
  description: 'a link to a notebook the user may not open: log in first, come back to that path, and get 403 naming the user',
  async run(t) {
    const origin = new URL(t.config.consoleUrl).origin;

    await t.step('open the link without a session: Keycloak asks to log in', async (page) => {
      await page.goto(`${t.config.consoleUrl}${PATH}`);
      await page.locator('#username').waitFor({ state: 'visible' });
      t.check(await onLoginForm(page), `not on the login form: ${page.url()}`);
      t.check(new URL(page.url()).origin !== origin, `the login form is the console's: ${page.url()}`);
    });

    await t.step('log in: back at the same notebook path', async (page) => {
      await submit(page, t.config.user, t.config.password);
      await page.waitForURL((url) => url.origin === origin);
      t.check(
        new URL(page.url()).pathname === PATH,
        `after the login the browser is at ${page.url()}, not ${PATH}`,
      );
    });

    await t.step('the notebook answers 403, naming the user and no token', async (page) => {
      const answer = await page.reload();
      t.check(answer?.status() === 403, `${PATH} answered ${answer?.status()}, not 403`);
      const text = await pageText(page, 100_000);
      t.check(
        text.toLowerCase().includes(t.config.userName.toLowerCase()),
        `the 403 page does not say who is refused (${t.config.userName})`,
      );
      t.check(!/eyJ[A-Za-z0-9_-]{10,}\./.test(text), 'the 403 page shows a token');
    });
  },
};
