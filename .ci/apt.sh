# Sourced by .ci/postgres.sh and .ci/chromium.sh: Debian packages installed as root (or with
# sudo), for the servers and tools the tests need. The sourcing script defines say().

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

# apt_install PACKAGE…: refresh the index, install without questions; progress to stderr.
apt_install() {
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >&2
}
