# Shared by the command-line drivers of the matrix (sourced, not run).
# Each driver defines scenario_<name> functions; `run_scenario "$1"` calls one
# and turns its outcome into the matrix's exit codes (0 pass, 1 fail, 77 n/a).
set -u
IFACE=org.kdbusbridge.Compat
OPATH=/org/kdbusbridge/Compat
FIX=${COMPAT_FIXTURE:-$IFACE.Fixture}
CALLEE=${COMPAT_CALLEE:-$IFACE.Callee}
ADDR=${COMPAT_ADDRESS:-}
TCP_ADDR=${COMPAT_TCP_ADDRESS:-}
MATCH_RULE="type='signal',interface='$IFACE',member='Tick',arg0='yes',arg1='b1',path_namespace='$OPATH/ns'"
END_RULE="type='signal',interface='$IFACE',member='End'"
EXPECTED_TICKS="$OPATH/ns $OPATH/ns/a/b"
TMP=$(mktemp -d)
BG=""
cleanup() { [ -n "$BG" ] && kill "$BG" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

fail() { echo "$*" >&2; exit 1; }
token() { echo "t$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"; }
# expect_in TEXT NEEDLE WHAT
expect_in() { case "$1" in *"$2"*) ;; *) fail "$3: expected '$2' in: $(echo "$1" | tr '\n' ' ' | cut -c1-200)";; esac; }
# wait_for FILE PATTERN SECONDS: poll a background tool's output
wait_for() {
  local i=0
  while [ $i -lt $(( $3 * 10 )) ]; do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
# background CMD...: run a listener whose stdout goes to $TMP/bg
background() { "$@" >"$TMP/bg" 2>&1 & BG=$!; }

run_scenario() {
  if ! declare -F "scenario_${1//-/_}" >/dev/null; then
    echo "not expressible with this client" >&2
    exit 77
  fi
  "scenario_${1//-/_}"
  exit 0
}
