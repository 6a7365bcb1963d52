#!/usr/bin/env bash
# Fetches the pinned Keycloak server distribution (org.keycloak:keycloak-quarkus-dist, tar.gz) from
# Maven Central with the Maven client and unpacks it into a cache outside the work tree keyed by
# the pin. Keycloak 26 needs Java 21 or newer: the JDK to run it with is written to
# <dir>/java-home, found as $BERTH_KEYCLOAK_JAVA_HOME, else $JAVA_HOME if it is 21+, else the
# newest JDK 21+ under /usr/lib/jvm.
# Progress goes to stderr; the last line of stdout is the directory that holds bin/kc.sh.
#   tools/keycloak/build.sh   fetch what is missing (about 170 MB; under a minute here)
#   BERTH_CACHE=/path         where the cache lives (default ~/.cache/berth)
set -euo pipefail
KEYCLOAK_VERSION=26.7.3
# Maven's dependency plugin at a version that can copy a non-jar artifact by coordinates.
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
# Bump when the way Keycloak is laid out changes, to force a refetch.
recipe=1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

java_major() { "$1/bin/java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ { print $2 }'; }

find_java_home() {
  local candidate
  for candidate in "${BERTH_KEYCLOAK_JAVA_HOME:-}" "${JAVA_HOME:-}"; do
    if [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] && [ "$(java_major "$candidate")" -ge 21 ]; then
      echo "$candidate"; return
    fi
  done
  local best="" best_major=0 major
  for candidate in /usr/lib/jvm/*; do
    [ -x "$candidate/bin/java" ] && [ ! -L "$candidate" ] || continue
    major=$(java_major "$candidate")
    if [ "${major:-0}" -ge 21 ] && [ "$major" -gt "$best_major" ]; then best=$candidate best_major=$major; fi
  done
  [ -n "$best" ] || { log keycloak "Keycloak $KEYCLOAK_VERSION needs Java 21 or newer; none found (set BERTH_KEYCLOAK_JAVA_HOME)"; return 1; }
  echo "$best"
}

fetch_keycloak() {
  mkdir -p "$1/download"
  mvn -B -q "$DEPENDENCY_PLUGIN:copy" \
    "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:tar.gz" \
    "-DoutputDirectory=$1/download" >&2
  log keycloak "unpacking"
  tar -xzf "$1/download/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz" -C "$1" --strip-components=1
  rm -rf "$1/download"
}

cached_build keycloak keycloak "$(cache_key "$recipe $KEYCLOAK_VERSION")" "bin/kc.sh" fetch_keycloak
java_home=$(find_java_home)
echo "$java_home" > "$built_dir/java-home"
log keycloak "keycloak runs on $java_home (Java $(java_major "$java_home"))"
echo "$built_dir"
