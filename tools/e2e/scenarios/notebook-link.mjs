// A link to a notebook the user may not open: the console sends the browser to log in, brings it
// back after the login (the `next` of /login), and answers 403 with a page that names the user and
// what they may not do, never a token. With --notebook-domain (the dev console's nb.localhost) the
// link goes through the notebook's own host to the console's hand-off (/notebook-handoff for that
// notebook), which is where the login brings the browser back and the 403 is; without it, to the
// very path.

import { pageText } from '../harness.mjs';
import { onLoginForm, submit } from './login.mjs';

/** A notebook path in a namespace nobody is a member of (none exists: the answer is the same). */
const NAMESPACE = 'berth-e2e-elsewhere';
const PATH = `/notebook/${NAMESPACE}/lab/lab`;

/** Whether `url` (on the console's origin) is the notebook's path, or the hand-off for it. */
function backAtTheNotebook(url) {
  if (url.pathname === PATH) return true;
  const q = url.searchParams;
  return (
    url.pathname === '/notebook-handoff' &&
    q.get('namespace') === NAMESPACE &&
    q.get('name') === 'lab' &&
    q.get('next') === PATH
  );
}

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

    await t.step('log in: back at the same notebook path (or its hand-off)', async (page) => {
      await submit(page, t.config.user, t.config.password);
      await page.waitForURL((url) => url.origin === origin);
      t.check(
        backAtTheNotebook(new URL(page.url())),
        `after the login the browser is at ${page.url()}, not ${PATH} or its hand-off`,
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
