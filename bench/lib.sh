# Shared by run.sh and stream.sh (sourced, not run): the tools they need, and the optional peers.
# Expects $tmp (logs) and $peers_dir (where peers are installed) to be set.

# Debian keeps nginx in /usr/sbin, which is not on every user's PATH.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

# need COMMAND=DEBIAN_PACKAGE ...: exit 2 naming every missing command and the packages that provide it.
need() {
  local pair missing=() packages=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || { missing+=("${pair%%=*}"); packages+=("${pair#*=}"); }
  done
  [ ${#missing[@]} = 0 ] && return 0
  echo "$(basename "$0"): missing ${missing[*]}. On Debian or Ubuntu: sudo apt-get install -y ${packages[*]}" >&2
  exit 2
}

# The peers a user would pick instead of this project. Neither is needed: a peer that is not installed is
# skipped with a line saying how to install it, and BENCH_INSTALL_PEERS=1 installs it (once, under $peers_dir).
litellm_bin() {
  if [ -x "$peers_dir/litellm/bin/litellm" ]; then echo "$peers_dir/litellm/bin/litellm"; else command -v litellm || true; fi
}
portkey_js() { echo "$peers_dir/portkey/node_modules/@portkey-ai/gateway/build/start-server.js"; }
PORTKEY_VERSION=1.15.2

peer_installed() {
  case $1 in
    litellm) [ -n "$(litellm_bin)" ] ;;
    portkey) [ -f "$(portkey_js)" ] ;;
  esac
}

peer_install_hint() {
  case $1 in
    litellm) echo "python3 -m venv $peers_dir/litellm && $peers_dir/litellm/bin/pip install 'litellm[proxy]'" ;;
    portkey) echo "mkdir -p $peers_dir/portkey && cd $peers_dir/portkey && npm install @portkey-ai/gateway@$PORTKEY_VERSION" ;;
  esac
}

peer_install() {
  echo "installing $1 under $peers_dir (log: $tmp/$1-install.log)" >&2
  case $1 in
    litellm)
      python3 -m venv "$peers_dir/litellm" >"$tmp/litellm-install.log" 2>&1 &&
        "$peers_dir/litellm/bin/pip" install -q 'litellm[proxy]' >>"$tmp/litellm-install.log" 2>&1 ;;
    portkey)
      command -v npm >/dev/null || { echo "npm is missing: sudo apt-get install -y npm" >"$tmp/portkey-install.log"; return 1; }
      mkdir -p "$peers_dir/portkey" &&
        (cd "$peers_dir/portkey" && npm install --silent "@portkey-ai/gateway@$PORTKEY_VERSION" >"$tmp/portkey-install.log" 2>&1) ;;
  esac
}

# peer_ready NAME: 0 when the peer can be started; otherwise says on stderr why it is skipped and returns 1.
peer_ready() {
  local peer=$1
  case $peer in
    litellm) ;;
    portkey)
      command -v node >/dev/null || { echo "SKIP target=portkey: needs node (sudo apt-get install -y nodejs npm)" >&2; return 1; } ;;
    *) echo "unknown peer $peer (litellm, portkey)" >&2; return 2 ;;
  esac
  peer_installed "$peer" && return 0
  if [ "${BENCH_INSTALL_PEERS:-0}" = 1 ]; then
    peer_install "$peer" && peer_installed "$peer" && return 0
    echo "SKIP target=$peer: installing it failed (see $tmp/$peer-install.log)" >&2
    return 1
  fi
  echo "SKIP target=$peer: not installed. To compare with it, run once with BENCH_INSTALL_PEERS=1, or: $(peer_install_hint "$peer")" \
       "(BENCH_PEERS=\"\" leaves the peers out without this line)" >&2
  return 1
}
