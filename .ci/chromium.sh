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

# shellcheck source=.ci/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

if ! command -v chromium >/dev/null; then
    say "chromium not found: installing Debian's package"
    # The fonts give the screenshots readable text; the rest comes with the package.
    apt_install chromium fonts-dejavu-core
    command -v chromium >/dev/null || { say "installed, but chromium is still missing"; exit 1; }
fi
say "$(chromium --version 2>/dev/null || echo chromium)"
command -v chromium
