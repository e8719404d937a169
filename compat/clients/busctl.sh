#!/usr/bin/env bash
# Matrix driver for sd-bus's command-line tool: busctl.
. "$(dirname "$0")/cli-common.sh"

bc() { busctl --address="$1" --timeout=20 "${@:2}" 2>&1; }

hello() {
  local out
  out=$(bc "$1" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s org.freedesktop.DBus) || fail "GetNameOwner: $out"
  [ "$out" = 's "org.freedesktop.DBus"' ] || fail "GetNameOwner: $out"
  out=$(bc "$1" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ListNames) || fail "ListNames: $out"
  expect_in "$out" '"org.freedesktop.DBus"' ListNames
}
scenario_hello_unix() { hello "$ADDR"; }
scenario_hello_tcp() { hello "$TCP_ADDR"; }

scenario_call() {
  local t out
  t=$(token)
  out=$(bc "$ADDR" call "$FIX" $OPATH $IFACE Echo s "$t") || fail "Echo: $out"
  [ "$out" = "s \"$t\"" ] || fail "Echo: $out"
  out=$(bc "$ADDR" call "$FIX" $OPATH $IFACE Add ii 40 2) || fail "Add: $out"
  [ "$out" = "i 42" ] || fail "Add: $out"
  if out=$(bc "$ADDR" call "$FIX" $OPATH $IFACE Fail s boom); then fail "Fail() returned"; fi
  expect_in "$out" "boom" "Fail error"
}

scenario_properties() {
  local out
  out=$(bc "$ADDR" get-property "$FIX" $OPATH $IFACE Name) || fail "Get: $out"
  [ "$out" = 's "compat-fixture"' ] || fail "Get Name: $out"
  out=$(bc "$ADDR" set-property "$FIX" $OPATH $IFACE Count i 42) || fail "Set: $out"
  out=$(bc "$ADDR" get-property "$FIX" $OPATH $IFACE Count) || fail "Get: $out"
  [ "$out" = "i 42" ] || fail "Get Count: $out"
  out=$(bc "$ADDR" introspect --xml-interface "$FIX" $OPATH) || fail "Introspect: $out"
  expect_in "$out" "<interface name=\"$IFACE\">" Introspect
}

start_monitor() {
  background busctl --address="$ADDR" monitor "$@"
  sleep 0.5
}

scenario_signals() {
  local out got
  start_monitor --match="$MATCH_RULE" --match="$END_RULE"
  out=$(bc "$ADDR" call "$FIX" $OPATH $IFACE EmitMatches) || fail "EmitMatches: $out"
  wait_for "$TMP/bg" "Member=End" 5 || fail "no End signal"
  got=$(grep -E 'Member=(Tick|Tock)' "$TMP/bg" | sed -E 's/.*Path=([^ ]*).*/\1/' | tr '\n' ' ' | sed 's/ $//')
  [ "$got" = "$EXPECTED_TICKS" ] || fail "matched signals: got '$got', want '$EXPECTED_TICKS'"
}

scenario_monitor() {
  local t out
  t=$(token)
  start_monitor
  out=$(bc "$ADDR" call "$FIX" $OPATH $IFACE Echo s "$t") || fail "Echo: $out"
  wait_for "$TMP/bg" "Type=method_return" 5 || true
  sleep 0.3
  grep -q "Member=Echo" "$TMP/bg" || fail "monitor did not see the call"
  [ "$(grep -c "STRING \"$t\"" "$TMP/bg")" -ge 2 ] || fail "monitor did not see the call and its reply"
}

run_scenario "$1"
