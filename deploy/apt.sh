# Sourced by the setup scripts (setup-ops.sh, setup-venv.sh) and the Makefile's redis and
# console-deps targets: `apt_install PACKAGE...`
# installs from Debian's packages, as root or through sudo, with one `apt-get update` per
# script run, waiting for another apt run's lock (a parallel setup step) instead of failing.
apt_sudo=$([ "$(id -u)" = 0 ] || echo sudo)
apt_updated=

apt_install() {
  echo "[setup] installing $* from Debian's packages"
  local wait=(-o DPkg::Lock::Timeout=600)
  [ -n "$apt_updated" ] || { $apt_sudo apt-get "${wait[@]}" update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $apt_sudo apt-get "${wait[@]}" install -y -qq --no-install-recommends \
    "$@" >/dev/null
}
