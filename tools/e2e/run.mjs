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
//   BERTH_E2E_ACCOUNTS, BERTH_E2E_KUBECONFIG, BERTH_E2E_SAMPLE, BERTH_E2E_PROJECT,
//   BERTH_E2E_PLACEMENT     the platform walks' inputs (owner, member, viewer, outsider; see
//                           platform.mjs); `cargo xtask dev --smoke` sets them. With them,
//                           BERTH_E2E_USER and BERTH_E2E_PASSWORD default to the owner's account.
//   BERTH_E2E_IDP_URL, BERTH_E2E_IDP_CA_FILE  an https identity provider whose certificate a CA
//                           of the platform's own signed (the dev platform's Keycloak): its
//                           certificate is verified against that CA here, and Chromium accepts
//                           that one certificate (by its public key's hash)
// The platform walks are not run unless named (they need a whole platform); after them, the
// project the owner made is deleted with the Delete policy (as the platform admin).
// Exit status: 0 when every scenario passed, 1 when one failed, 2 on bad input.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, runAll } from './harness.mjs';
import { kubectl, platformConfig, verifiedSpki } from './platform.mjs';
import login from './scenarios/login.mjs';
import member from './scenarios/member.mjs';
import notebookLink from './scenarios/notebook-link.mjs';
import outsider from './scenarios/outsider.mjs';
import owner from './scenarios/owner.mjs';
import viewer from './scenarios/viewer.mjs';

/** Run by default (a console and one user suffice). */
const SCENARIOS = [login, notebookLink];
/** Run when named, in this order: the owner's walk makes what the others look at. */
const WALKS = [owner, member, viewer, outsider];

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
const platform = platformConfig(process.env);
const fallback = platform?.accounts?.owner;
const user = process.env.BERTH_E2E_USER || fallback?.user || required('BERTH_E2E_USER');
const config = {
  consoleUrl: required('BERTH_E2E_CONSOLE_URL').replace(/\/+$/, ''),
  user,
  password: process.env.BERTH_E2E_PASSWORD || fallback?.password || required('BERTH_E2E_PASSWORD'),
  userName: process.env.BERTH_E2E_USER_NAME || user,
  chromium,
  artifacts: resolve(process.env.BERTH_E2E_ARTIFACTS || join(here, '..', '..', 'target', 'e2e-artifacts')),
  sandbox: process.env.BERTH_E2E_SANDBOX
    ? process.env.BERTH_E2E_SANDBOX === '1'
    : process.getuid?.() !== 0,
  platform,
};

const ALL = [...SCENARIOS, ...WALKS];
if (process.env.BERTH_E2E_IDP_URL && process.env.BERTH_E2E_IDP_CA_FILE) {
  config.trustedSpki = [await verifiedSpki(process.env.BERTH_E2E_IDP_URL, process.env.BERTH_E2E_IDP_CA_FILE)];
}

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !ALL.some((s) => s.name === w));
if (unknown.length) {
  console.error(`[e2e] no scenario ${unknown.join(', ')}; there are: ${ALL.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const chosen = wanted.length ? ALL.filter((s) => wanted.includes(s.name)) : SCENARIOS;

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
  if (chosen.includes(owner) && platform?.kubeconfig) {
    // The owner's project goes with its namespace, bucket and client (the Delete policy: the
    // platform's default, Retain, would keep them), so that the next run starts clean.
    try {
      const found = kubectl({ config }, ['get', 'project', platform.project, '--ignore-not-found', '-o', 'name']);
      if (found.trim()) {
        kubectl({ config }, ['patch', 'project', platform.project, '--type=merge', '-p', '{"spec":{"deletionPolicy":"Delete"}}']);
      }
      kubectl({ config }, ['delete', 'project', platform.project, '--ignore-not-found', '--wait=false']);
      console.log(`[e2e] deleted Project ${platform.project} (the owner's walk)`);
    } catch (e) {
      console.error(`[e2e] could not delete Project ${platform.project}: ${e.message}`);
    }
  }
}
const seconds = ((Date.now() - begin) / 1000).toFixed(1);
console.log(`[e2e] ${chosen.length - failures} of ${chosen.length} scenarios passed in ${seconds} s`);
process.exit(failures ? 1 : 0);
