// The viewer's walk (issue 15): a viewer of the sample project sees its project, notebooks,
// notebook, models and model pages with no edit control (no form that POSTs, no button, no
// Open link to the notebook); then POSTs forged from their own browser, with their session's
// valid CSRF token (taken from a page where they may edit: the owner's new project, where they
// are an editor), are refused by the API server: 403, the console's "You cannot do this here"
// naming the role that would allow it and quoting the API server's refusal; and the objects are
// unchanged (read as the platform admin).

import { account, csrfOf, editControls, getObject, logIn, open, platform, postFromPage } from '../platform.mjs';

export default {
  name: 'viewer',
  description: 'a viewer sees no edit controls, and forged POSTs with a valid CSRF token are refused by the API server, changing nothing',
  async run(t) {
    const p = platform(t);
    const who = account(t, 'viewer');
    const { project, notebook, model } = p.sample;

    await t.step(`log in as ${who.user}`, async (page) => {
      await logIn(t, page, who);
    });

    for (const [what, path] of [
      ['project', `/projects/${project}`],
      ['notebooks', `/projects/${project}/notebooks`],
      ['notebook', `/projects/${project}/notebooks/${notebook}`],
      ['models', `/projects/${project}/models`],
      ['model', `/projects/${project}/models/${model}`],
    ]) {
      await t.step(`the ${what} page has no edit control`, async (page) => {
        await open(t, page, path);
        const controls = await editControls(page);
        t.check(controls === 0, `${path} shows ${who.user} ${controls} form(s) or button(s)`);
        t.check(
          (await page.locator('main a', { hasText: /^Open$/ }).count()) === 0,
          `${path} shows ${who.user} an Open link to a notebook`,
        );
        if (what === 'project') {
          const said = await page.locator('main p', { hasText: 'your role' }).first().innerText();
          t.check(/your role:\s*viewer\b/.test(said), `${path} says "${said}" to ${who.user}`);
        }
      });
    }

    const csrf = await t.step(`a valid CSRF token from ${p.project}, where ${who.user} is an editor`, async (page) => {
      await open(t, page, `/projects/${p.project}/notebooks`);
      const token = await csrfOf(page);
      t.check(token, `/projects/${p.project}/notebooks has no form with a CSRF token for ${who.user} (did the owner walk add them as an editor?)`);
      return token;
    });

    const before = {
      notebook: getObject(t, 'notebook', notebook, project),
      model: getObject(t, 'mlmodel', model, project),
      project: getObject(t, 'project', project),
    };
    for (const [what, path, fields, role, verb] of [
      ['stop the notebook', `/projects/${project}/notebooks/${notebook}`, { action: 'stop' }, 'editor or owner', 'patch'],
      ['delete the model', `/projects/${project}/models/${model}`, { action: 'delete' }, 'editor or owner', 'delete'],
      ['make themselves an owner', `/projects/${project}/members`, { action: 'role', kind: 'User', name: who.user, role: 'owner' }, 'owner', 'patch'],
    ]) {
      await t.step(`a forged POST to ${what} is refused by the API server`, async (page) => {
        await open(t, page, `/projects/${project}`);
        const answer = await postFromPage(page, path, { csrf, ...fields });
        t.check(answer.status === 403, `POST ${path} ${JSON.stringify(fields)} answered ${answer.status}, not 403`);
        const text = answer.text.replace(/&quot;|&#34;|&#x22;/g, '"');
        t.check(text.includes('You cannot do this here'), `the refusal of ${path} is not the console's "You cannot do this here": ${text.slice(0, 600)}`);
        t.check(text.includes(`needs the ${role}`) || text.includes(`${role} role`), `the refusal of ${path} does not name the ${role} role`);
        // The API server's own sentence: the console's CSRF and form checks passed, and the
        // request reached the API server as the viewer.
        t.check(
          new RegExp(`The API server said: .*cannot ${verb} resource`).test(text),
          `the refusal of ${path} does not quote the API server's "cannot ${verb} resource": ${text.slice(0, 800)}`,
        );
        await page.setContent(answer.text.replace(/<script[\s\S]*?<\/script>/g, ''));
      });
    }

    await t.step('the notebook, the model and the project are unchanged', async () => {
      const after = {
        notebook: getObject(t, 'notebook', notebook, project),
        model: getObject(t, 'mlmodel', model, project),
        project: getObject(t, 'project', project),
      };
      for (const kind of ['notebook', 'model', 'project']) {
        const [b, a] = [before[kind], after[kind]];
        t.check(a.metadata.uid === b.metadata.uid, `the sample ${kind} was replaced`);
        t.check(!a.metadata.deletionTimestamp, `the sample ${kind} is being deleted`);
        t.check(
          a.metadata.generation === b.metadata.generation && JSON.stringify(a.spec) === JSON.stringify(b.spec),
          `the sample ${kind}'s spec changed: ${JSON.stringify(b.spec)} -> ${JSON.stringify(a.spec)}`,
        );
      }
      t.check(after.notebook.spec.stopped !== true, 'the sample notebook is stopped');
    });
  },
};
