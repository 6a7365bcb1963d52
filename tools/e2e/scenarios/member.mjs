// The new members' walk (issue 15): the user the owner added by e-mail, and a user of the
// Keycloak group the owner added, each log in and find the owner's new project on *My projects*
// and on its page with the role the owner gave them (editor and viewer).

import { account, logIn, open, platform } from '../platform.mjs';

export default {
  name: 'member',
  description: "the owner's new member (by e-mail) and a user of the added group see the new project with their roles",
  async run(t) {
    const p = platform(t);
    const project = p.project;
    const parts = [['member', 'editor'], ['groupMember', 'viewer']];
    for (const [part, role] of parts) {
      const who = account(t, part);
      if (part !== parts[0][0]) await t.newContext();

      await t.step(`log in as ${who.user}`, async (page) => {
        await logIn(t, page, who);
      });

      await t.step(`My projects lists ${project} with the role ${role}`, async (page) => {
        await open(t, page, '/');
        const row = page.locator('main table tr', { has: page.locator(`a[href="/projects/${project}"]`) });
        t.check((await row.count()) === 1, `My projects of ${who.user} does not list ${project}`);
        const cells = await row.locator('td').allInnerTexts();
        t.check(cells[2]?.trim() === role, `My projects shows ${who.user}'s role in ${project} as "${cells[2]}", not ${role}`);
      });

      await t.step(`the page of ${project} says "your role: ${role}"`, async (page) => {
        await page.locator(`main a[href="/projects/${project}"]`).click();
        await page.waitForURL((url) => url.pathname === `/projects/${project}`);
        const said = await page.locator('main p', { hasText: 'your role' }).first().innerText();
        t.check(new RegExp(`your role:\\s*${role}\\b`).test(said), `the page of ${project} says "${said}" to ${who.user}`);
      });
    }
  },
};
