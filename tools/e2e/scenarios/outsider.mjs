// The outsider's walk (issue 15): a user of the realm who is a member of nothing logs in, finds
// the sample project nowhere on *My projects*, and gets 403 (the status code, not only a text)
// at the direct URLs of its page, its notebook (the console's proxy path, followed wherever it
// redirects) and its model's page.

import { pageText } from '../harness.mjs';
import { account, logIn, open, platform } from '../platform.mjs';

export default {
  name: 'outsider',
  description: "an outsider sees nothing of the sample project: My projects does not list it; its page, notebook and model answer 403",
  async run(t) {
    const p = platform(t);
    const who = account(t, 'outsider');
    const { project, notebook, model } = p.sample;

    await t.step(`log in as ${who.user}`, async (page) => {
      await logIn(t, page, who);
    });

    await t.step(`My projects does not list ${project}`, async (page) => {
      await open(t, page, '/');
      const text = await pageText(page, 100_000);
      t.check(!text.includes(project), `My projects of ${who.user} names ${project}`);
      t.check(
        (await page.locator(`a[href^="/projects/${project}"]`).count()) === 0,
        `My projects of ${who.user} links ${project}`,
      );
      t.check(!text.includes(p.project), `My projects of ${who.user} names the owner's new project ${p.project}`);
    });

    for (const [what, path] of [
      ['page', `/projects/${project}`],
      ['notebooks page', `/projects/${project}/notebooks`],
      ['notebook (the proxy)', `/notebook/${project}/${notebook}/lab`],
      ['model page', `/projects/${project}/models/${model}`],
      ["new project's page", `/projects/${p.project}`],
    ]) {
      await t.step(`the ${what} ${path} answers 403`, async (page) => {
        await open(t, page, path, 403);
        const text = await pageText(page, 100_000);
        t.check(!text.includes('Conditions'), `the 403 of ${path} shows the project's conditions`);
        t.check(!/eyJ[A-Za-z0-9_-]{10,}\./.test(text), `the 403 of ${path} shows a token`);
      });
    }
  },
};
