#!/usr/bin/env bash
# Matrix driver for QtDBus's command-line tool: qdbus (Qt 5). qdbus introspects
# the object before each call to learn the signature.
. "$(dirname "$0")/cli-common.sh"
export QT_SELECT=${QT_SELECT:-qt5}

q() { qdbus --bus "$@" 2>&1; }

hello() {
  local out
  out=$(q "$1") || fail "list: $out"
  expect_in "$out" "org.freedesktop.DBus" "service list"
  out=$(q "$1" org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner org.freedesktop.DBus) || fail "GetNameOwner: $out"
  [ "$out" = "org.freedesktop.DBus" ] || fail "GetNameOwner: $out"
}
scenario_hello_unix() { hello "$ADDR"; }
scenario_hello_tcp() { hello "$TCP_ADDR"; }

scenario_call() {
  local t out
  t=$(token)
  out=$(q "$ADDR" "$FIX" $OPATH $IFACE.Echo "$t") || fail "Echo: $out"
  [ "$out" = "$t" ] || fail "Echo: $out"
  out=$(q "$ADDR" "$FIX" $OPATH $IFACE.Add 40 2) || fail "Add: $out"
  [ "$out" = "42" ] || fail "Add: $out"
  if out=$(q "$ADDR" "$FIX" $OPATH $IFACE.Fail boom); then fail "Fail() returned"; fi
  expect_in "$out" "$IFACE.Error.Failed" "Fail error"
  expect_in "$out" "boom" "Fail message"
}

scenario_properties() {
  local out
  out=$(q "$ADDR" "$FIX" $OPATH org.freedesktop.DBus.Properties.Get $IFACE Name) || fail "Get: $out"
  [ "$out" = "compat-fixture" ] || fail "Get Name: $out"
  out=$(q "$ADDR" "$FIX" $OPATH) || fail "member list: $out"
  expect_in "$out" "method QString $IFACE.Echo(QString" "introspected methods"
}

scenario_noreply() {
  local out
  if out=$(q "$ADDR" "$CALLEE" $OPATH $IFACE.Hang); then fail "Hang() returned"; fi
  expect_in "$out" "org.freedesktop.DBus.Error.NoReply" "pending call"
}

run_scenario "$1"
