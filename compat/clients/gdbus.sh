#!/usr/bin/env bash
# Matrix driver for GDBus's command-line tool: gdbus.
. "$(dirname "$0")/cli-common.sh"

gc() { local a=$1 d=$2 p=$3 m=$4; shift 4; gdbus call --address "$a" --timeout 20 --dest "$d" --object-path "$p" --method "$m" "$@" 2>&1; }

hello() {
  local out
  out=$(gc "$1" org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner org.freedesktop.DBus) || fail "GetNameOwner: $out"
  [ "$out" = "('org.freedesktop.DBus',)" ] || fail "GetNameOwner: $out"
  out=$(gc "$1" org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.ListNames) || fail "ListNames: $out"
  expect_in "$out" "'org.freedesktop.DBus'" ListNames
}
scenario_hello_unix() { hello "$ADDR"; }
scenario_hello_tcp() { hello "$TCP_ADDR"; }

scenario_call() {
  local t out
  t=$(token)
  out=$(gc "$ADDR" "$FIX" $OPATH $IFACE.Echo "$t") || fail "Echo: $out"
  [ "$out" = "('$t',)" ] || fail "Echo: $out"
  out=$(gc "$ADDR" "$FIX" $OPATH $IFACE.Add 40 2) || fail "Add: $out"
  [ "$out" = "(42,)" ] || fail "Add: $out"
  if out=$(gc "$ADDR" "$FIX" $OPATH $IFACE.Fail boom); then fail "Fail() returned"; fi
  expect_in "$out" "GDBus.Error:$IFACE.Error.Failed: boom" "Fail error"
}

scenario_properties() {
  local out
  out=$(gc "$ADDR" "$FIX" $OPATH org.freedesktop.DBus.Properties.Get $IFACE Name) || fail "Get: $out"
  [ "$out" = "(<'compat-fixture'>,)" ] || fail "Get Name: $out"
  out=$(gc "$ADDR" "$FIX" $OPATH org.freedesktop.DBus.Properties.Set $IFACE Count "<int32 42>") || fail "Set: $out"
  out=$(gc "$ADDR" "$FIX" $OPATH org.freedesktop.DBus.Properties.Get $IFACE Count) || fail "Get: $out"
  [ "$out" = "(<42>,)" ] || fail "Get Count: $out"
  out=$(gdbus introspect --address "$ADDR" --dest "$FIX" --object-path $OPATH --xml 2>&1) || fail "Introspect: $out"
  expect_in "$out" "<interface name=\"$IFACE\">" Introspect
}

scenario_noreply() {
  local out
  if out=$(gc "$ADDR" "$CALLEE" $OPATH $IFACE.Hang); then fail "Hang() returned"; fi
  expect_in "$out" "GDBus.Error:org.freedesktop.DBus.Error.NoReply" "pending call"
}

run_scenario "$1"
