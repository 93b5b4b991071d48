# tools/need-packages.sh — sourced by the setup scripts (setup.sh, cross-aarch64.sh, sanitize.sh):
#   need_packages WHO PKG...   installs from Debian those of PKG... that are not installed (apt-get, via sudo
#                              when not root), saying "WHO: installing ..." first; does nothing when all are.
need_packages() {
  local who=$1 p missing=""
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -n "$missing" ] || return 0
  echo "$who: installing$missing"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
