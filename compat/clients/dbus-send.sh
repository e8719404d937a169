#!/usr/bin/env bash
# Matrix driver for libdbus's command-line tools: dbus-send and dbus-monitor.
. "$(dirname "$0")/cli-common.sh"

send() { dbus-send --bus="$1" --print-reply --reply-timeout=20000 "${@:2}" 2>&1; }

hello() {
  local out
  out=$(send "$1" --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner string:org.freedesktop.DBus) || fail "GetNameOwner: $out"
  expect_in "$out" 'string "org.freedesktop.DBus"' GetNameOwner
  out=$(send "$1" --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.ListNames) || fail "ListNames: $out"
  expect_in "$out" "string \":1." ListNames
}
scenario_hello_unix() { hello "$ADDR"; }
scenario_hello_tcp() { hello "$TCP_ADDR"; }

scenario_call() {
  local t out
  t=$(token)
  out=$(send "$ADDR" --dest="$FIX" $OPATH $IFACE.Echo string:"$t") || fail "Echo: $out"
  expect_in "$out" "string \"$t\"" Echo
  out=$(send "$ADDR" --dest="$FIX" $OPATH $IFACE.Add int32:40 int32:2) || fail "Add: $out"
  expect_in "$out" "int32 42" Add
  if out=$(send "$ADDR" --dest="$FIX" $OPATH $IFACE.Fail string:boom); then fail "Fail() returned"; fi
  expect_in "$out" "Error $IFACE.Error.Failed: boom" "Fail error"
}

scenario_properties() {
  local out
  out=$(send "$ADDR" --dest="$FIX" $OPATH org.freedesktop.DBus.Properties.Get string:$IFACE string:Name) || fail "Get: $out"
  expect_in "$out" 'variant       string "compat-fixture"' "Get Name"
  out=$(send "$ADDR" --dest="$FIX" $OPATH org.freedesktop.DBus.Properties.Set string:$IFACE string:Count variant:int32:42) || fail "Set: $out"
  out=$(send "$ADDR" --dest="$FIX" $OPATH org.freedesktop.DBus.Properties.Get string:$IFACE string:Count) || fail "Get: $out"
  expect_in "$out" 'variant       int32 42' "Get Count"
  out=$(send "$ADDR" --dest="$FIX" $OPATH org.freedesktop.DBus.Introspectable.Introspect) || fail "Introspect: $out"
  expect_in "$out" "<interface name=\"$IFACE\">" Introspect
}

# dbus-monitor is this client's way to receive: its rules go through the bus's
# match engine (BecomeMonitor filters with the same semantics as AddMatch).
start_monitor() {
  background dbus-monitor --address "$ADDR" "$@"
  wait_for "$TMP/bg" NameLost 3 || true
  sleep 0.2
}

scenario_signals() {
  local out got
  start_monitor "$MATCH_RULE" "$END_RULE"
  out=$(send "$ADDR" --dest="$FIX" $OPATH $IFACE.EmitMatches) || fail "EmitMatches: $out"
  wait_for "$TMP/bg" "member=End" 5 || fail "no End signal"
  got=$(grep -E '^signal .*member=(Tick|Tock)' "$TMP/bg" | sed -E 's/.*path=([^;]*);.*/\1/' | tr '\n' ' ' | sed 's/ $//')
  [ "$got" = "$EXPECTED_TICKS" ] || fail "matched signals: got '$got', want '$EXPECTED_TICKS'"
}

scenario_monitor() {
  local t out
  t=$(token)
  start_monitor
  out=$(send "$ADDR" --dest="$FIX" $OPATH $IFACE.Echo string:"$t") || fail "Echo: $out"
  wait_for "$TMP/bg" "^method return" 5 || true
  sleep 0.3
  grep -q "^method call .*member=Echo" "$TMP/bg" || fail "monitor did not see the call"
  grep -A1 "^method return" "$TMP/bg" | grep -q "string \"$t\"" || fail "monitor did not see the reply"
}

scenario_noreply() {
  local out owner
  owner=$(send "$ADDR" --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner string:"$CALLEE" | sed -n 's/.*string "\(.*\)"/\1/p')
  [ -n "$owner" ] || fail "callee has no owner"
  start_monitor "type='signal',member='NameOwnerChanged',arg0='$CALLEE'"
  if out=$(send "$ADDR" --dest="$CALLEE" $OPATH $IFACE.Hang); then fail "Hang() returned"; fi
  expect_in "$out" "Error org.freedesktop.DBus.Error.NoReply" "pending call"
  wait_for "$TMP/bg" "string \"$CALLEE\"" 5 || fail "no NameOwnerChanged"
  sleep 0.2
  out=$(grep -A3 "member=NameOwnerChanged" "$TMP/bg" | tr '\n' ' ')
  expect_in "$out" "string \"$CALLEE\"    string \"$owner\"    string \"\"" NameOwnerChanged
}

run_scenario "$1"
