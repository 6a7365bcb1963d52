#!/usr/bin/env node
// Runs the console's browser tests (docs/development.md, "Browser tests"):
//   node tools/e2e/run.mjs [scenario ...]       every scenario, or those named
// Inputs, from the environment:
//   BERTH_E2E_CONSOLE_URL   the console as a browser reaches it (required), e.g. http://localhost:8080
//   BERTH_E2E_USER          a realm user's login name, and BERTH_E2E_PASSWORD its password (required)
//   BERTH_E2E_USER_NAME     the name the console shows for that user (default: BERTH_E2E_USER;
//                           the console names users by their verified e-mail, lower-cased)
//   BERTH_CHROMIUM          the Chromium to drive (required; tools/chromium.sh prints it)
//   BERTH_E2E_ARTIFACTS     where screenshots go, one directory per scenario
//                           (default: <repo>/target/e2e-artifacts)
//   BERTH_E2E_SANDBOX       1 or 0: Chromium's sandbox (default: on, except as root, where
//                           Chromium refuses to start with it)
// Exit status: 0 when every scenario passed, 1 when one failed, 2 on bad input.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, runAll } from './harness.mjs';
import login from './scenarios/login.mjs';
import notebookLink from './scenarios/notebook-link.mjs';

const SCENARIOS = [login, notebookLink];

const here = dirname(fileURLToPath(import.meta.url));

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`[e2e] ${name} is not set (see the top of tools/e2e/run.mjs)`);
    process.exit(2);
  }
  return value;
}

const chromium = required('BERTH_CHROMIUM');
if (!existsSync(chromium)) {
  console.error(`[e2e] BERTH_CHROMIUM=${chromium} does not exist (run tools/chromium.sh)`);
  process.exit(2);
}
const user = required('BERTH_E2E_USER');
const config = {
  consoleUrl: required('BERTH_E2E_CONSOLE_URL').replace(/\/+$/, ''),
  user,
  password: required('BERTH_E2E_PASSWORD'),
  userName: process.env.BERTH_E2E_USER_NAME || user,
  chromium,
  artifacts: resolve(process.env.BERTH_E2E_ARTIFACTS || join(here, '..', '..', 'target', 'e2e-artifacts')),
  sandbox: process.env.BERTH_E2E_SANDBOX
    ? process.env.BERTH_E2E_SANDBOX === '1'
    : process.getuid?.() !== 0,
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !SCENARIOS.some((s) => s.name === w));
if (unknown.length) {
  console.error(`[e2e] no scenario ${unknown.join(', ')}; there are: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const chosen = wanted.length ? SCENARIOS.filter((s) => wanted.includes(s.name)) : SCENARIOS;

const begin = Date.now();
const browser = await launch(config);
console.log(
  `[e2e] Chromium ${browser.version()} (${chromium}${config.sandbox ? '' : ', no sandbox: running as root'}); console ${config.consoleUrl}; screenshots under ${config.artifacts}`,
);
let failures;
try {
  failures = await runAll(browser, chosen, config);
} finally {
  await browser.close();
}
const seconds = ((Date.now() - begin) / 1000).toFixed(1);
console.log(`[e2e] ${chosen.length - failures} of ${chosen.length} scenarios passed in ${seconds} s`);
process.exit(failures ? 1 : 0);
