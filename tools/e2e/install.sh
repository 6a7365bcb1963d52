#!/usr/bin/env bash
# Installs the browser tests' one npm package, playwright-core at the version package-lock.json
# pins (with its integrity hash), into tools/e2e/node_modules with `npm ci`, npm's download cache
# under Berth's cache. playwright-core downloads no browser: the tests drive Debian's Chromium
# from tools/chromium.sh.
# Idempotent: when node_modules was installed from this very package-lock.json, nothing runs.
# Progress goes to stderr; the last line of stdout is tools/e2e's directory.
#   tools/e2e/install.sh      install what is missing (`cargo xtask e2e` and `cargo xtask test` run it)
#   BERTH_CACHE=/path         where npm's cache lives (default ~/.cache/berth, under npm/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

# playwright-core 1.65 needs Node 20 or newer (its `engines`); Debian 12's own nodejs is 18, so
# the machine brings its Node (NodeSource's nodejs 20 here).
command -v node >/dev/null && command -v npm >/dev/null || {
  log e2e "node and npm are needed: Node 20 or newer (NodeSource's nodejs package; Debian 12's is 18)"
  exit 1
}
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || {
  log e2e "Node $(node --version) is too old: playwright-core needs Node 20 or newer"
  exit 1
}
lock=$(sha256sum "$here/package-lock.json" | cut -c1-64)
stamp="$here/node_modules/.berth-package-lock.sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock" ]; then
  log e2e "node_modules: installed from this package-lock.json"
else
  log e2e "npm ci (playwright-core $(node -p 'require(process.argv[1]).packages["node_modules/playwright-core"].version' "$here/package-lock.json"), npm cache in $cache/npm)"
  start=$SECONDS
  (cd "$here" && npm_config_cache="$cache/npm" npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2)
  echo "$lock" >"$stamp"
  log e2e "node_modules installed in $((SECONDS - start)) s"
fi
echo "$here"
