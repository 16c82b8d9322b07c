#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/web/test_browser.py): Debian's package, the one
# browser this machine can install (nothing downloads a browser build of its own).
#
#   bash .ci/chromium.sh        # installs it with apt-get when `chromium` is missing, then
#                               # prints its path on stdout (progress and errors go to stderr)
#
# Installing needs root or sudo, as .ci/postgres.sh does for PostgreSQL. The tests find the
# binary on PATH (or at $HOTPAPERS_TEST_CHROMIUM); under CI=true they fail without it.
set -euo pipefail

say() { echo "chromium.sh: $*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        say "need root to run: $*"
        return 1
    fi
}

if ! command -v chromium >/dev/null; then
    say "chromium not found: installing Debian's package"
    as_root apt-get update -qq >&2
    # The fonts give the screenshots readable text; the rest comes with the package.
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >&2
    command -v chromium >/dev/null || { say "installed, but chromium is still missing"; exit 1; }
fi
say "$(chromium --version 2>/dev/null || echo chromium)"
command -v chromium
