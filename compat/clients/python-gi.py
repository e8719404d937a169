#!/usr/bin/python3
"""Matrix driver for GDBus through PyGObject (python3-gi). usage: python-gi.py SCENARIO"""
import os

from gi.repository import Gio, GLib

from compat_common import (DBUS, END_RULE, EXPECTED_TICKS, IFACE, MATCH_RULE, PATH, Failure, address, callee,
                           check, equal, fixture, main, tcp_address, token)

FLAGS = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)


def connect(addr=None):
    return Gio.DBusConnection.new_for_address_sync(addr or address, FLAGS, None, None)


def call(conn, dest, method, args=None, reply=None, iface=IFACE, path=PATH, fd_list=None):
    if fd_list is not None:
        result, fds = conn.call_with_unix_fd_list_sync(dest, path, iface, method, args,
                                                        GLib.VariantType(reply) if reply else None,
                                                        Gio.DBusCallFlags.NONE, 20000, fd_list, None)
        return result.unpack(), fds
    result = conn.call_sync(dest, path, iface, method, args, GLib.VariantType(reply) if reply else None,
                            Gio.DBusCallFlags.NONE, 20000, None)
    return result.unpack() if result is not None else None


def driver(conn, method, args=None, reply=None):
    return call(conn, DBUS, method, args, reply, DBUS, "/org/freedesktop/DBus")


def spin(until, seconds=5.0):
    ctx = GLib.MainContext.default()
    deadline = GLib.get_monotonic_time() + int(seconds * 1e6)
    while not until() and GLib.get_monotonic_time() < deadline:
        ctx.iteration(False) or GLib.usleep(2000)
    return until()


def hello(addr):
    conn = connect(addr)
    unique = conn.get_unique_name()
    check(unique.startswith(":"), "unique name %r" % unique)
    equal(driver(conn, "GetNameOwner", GLib.Variant("(s)", (unique,)), "(s)"), (unique,), "GetNameOwner(self)")


def names():
    a, b, c = connect(), connect(), connect()
    name = "org.kdbusbridge.Compat.N" + token()
    events = []
    a.signal_subscribe(DBUS, DBUS, "NameLost", "/org/freedesktop/DBus", name, Gio.DBusSignalFlags.NONE,
                       lambda *x: events.append("lost"))
    b.signal_subscribe(DBUS, DBUS, "NameAcquired", "/org/freedesktop/DBus", name, Gio.DBusSignalFlags.NONE,
                       lambda *x: events.append("acquired"))
    req = lambda conn, flags: driver(conn, "RequestName", GLib.Variant("(su)", (name, flags)), "(u)")[0]
    equal(req(a, 5), 1, "A RequestName")
    equal(req(b, 4), 3, "B RequestName DO_NOT_QUEUE")
    equal(req(b, 0), 2, "B RequestName queued")
    equal(driver(a, "ListQueuedOwners", GLib.Variant("(s)", (name,)), "(as)")[0],
          [a.get_unique_name(), b.get_unique_name()], "ListQueuedOwners")
    equal(req(c, 6), 1, "C RequestName REPLACE_EXISTING")
    owner = lambda: driver(a, "GetNameOwner", GLib.Variant("(s)", (name,)), "(s)")[0]
    equal(owner(), c.get_unique_name(), "owner after replacement")
    equal(driver(c, "ReleaseName", GLib.Variant("(s)", (name,)), "(u)")[0], 1, "C ReleaseName")
    equal(owner(), b.get_unique_name(), "owner after release")
    check(spin(lambda: "lost" in events and "acquired" in events), "NameLost/NameAcquired missing: %r" % events)


def do_call():
    conn = connect()
    t = token()
    equal(call(conn, fixture, "Echo", GLib.Variant("(s)", (t,)), "(s)"), (t,), "Echo")
    equal(call(conn, fixture, "Add", GLib.Variant("(ii)", (40, 2)), "(i)"), (42,), "Add")
    try:
        call(conn, fixture, "Fail", GLib.Variant("(s)", ("boom",)))
    except GLib.Error as err:
        equal(Gio.DBusError.get_remote_error(err), IFACE + ".Error.Failed", "error name")
    else:
        raise Failure("Fail() returned")


def collect_raw(conn, rules, stop):
    """Add match rules on the bus and gather every incoming signal until stop(msgs)."""
    seen = []

    def on_message(_c, msg, incoming):
        if incoming and msg.get_message_type() == Gio.DBusMessageType.SIGNAL:
            seen.append((msg.get_path(), msg.get_member(), msg.get_destination(), msg.get_body()))
        return msg
    conn.add_filter(on_message)
    for rule in rules:
        driver(conn, "AddMatch", GLib.Variant("(s)", (rule,)))
    return seen


def signals():
    conn = connect()
    seen = collect_raw(conn, [MATCH_RULE, END_RULE], None)
    call(conn, fixture, "EmitMatches")
    check(spin(lambda: any(m[1] == "End" for m in seen)), "no End signal")
    equal([m[0] for m in seen if m[1] in ("Tick", "Tock")], EXPECTED_TICKS, "matched signals")


def unicast():
    conn, observer = connect(), connect()
    got = collect_raw(conn, [], None)
    watched = collect_raw(observer, ["type='signal',interface='%s'" % IFACE], None)
    t = token()
    call(conn, fixture, "EmitTo", GLib.Variant("(ss)", (conn.get_unique_name(), t)))
    check(spin(lambda: any(m[1] == "Unicast" for m in got) and any(m[1] == "End" for m in watched)),
          "unicast signal or End missing")
    equal([m[3].unpack() for m in got if m[1] == "Unicast"][:1], [(t,)], "unicast body")
    check(not [m for m in watched if m[1] == "Unicast"], "a unicast signal reached a non-recipient")


def fds():
    conn = connect()
    t = token()
    r, w = os.pipe()
    os.write(w, t.encode())
    os.close(w)
    fd_list = Gio.UnixFDList.new_from_array([r])
    result, _ = call(conn, fixture, "ReadFd", GLib.Variant("(h)", (0,)), "(s)", fd_list=fd_list)
    equal(result, (t,), "ReadFd")
    result, out_fds = call(conn, fixture, "MakeFd", GLib.Variant("(s)", (t,)), "(h)", fd_list=Gio.UnixFDList())
    check(out_fds is not None and out_fds.get_length() == 1, "MakeFd returned no fd")
    fd = out_fds.get(result[0])
    with os.fdopen(fd, "rb") as f:
        equal(f.read().decode(), t, "MakeFd content")


def properties():
    conn = connect()
    props = "org.freedesktop.DBus.Properties"
    equal(call(conn, fixture, "Get", GLib.Variant("(ss)", (IFACE, "Name")), "(v)", props), ("compat-fixture",), "Get Name")
    call(conn, fixture, "Set", GLib.Variant("(ssv)", (IFACE, "Count", GLib.Variant("i", 42))), None, props)
    equal(call(conn, fixture, "Get", GLib.Variant("(ss)", (IFACE, "Count")), "(v)", props), (42,), "Get Count")
    xml = call(conn, fixture, "Introspect", None, "(s)", "org.freedesktop.DBus.Introspectable")[0]
    info = Gio.DBusNodeInfo.new_for_xml(xml).lookup_interface(IFACE)
    check(info is not None and info.lookup_method("Echo") is not None, "Introspect lacks Echo")


def monitor():
    mon, conn = connect(), connect()
    t = token()
    seen = []

    def on_message(_c, msg, incoming):
        body = msg.get_body()
        if body is not None and t in str(body.unpack()):
            seen.append(msg.get_message_type())
        # A monitor must never send: drop observed calls before GDBus answers
        # them with UnknownMethod (the bus would disconnect the monitor).
        return None if incoming and msg.get_message_type() == Gio.DBusMessageType.METHOD_CALL else msg
    mon.add_filter(on_message)
    call(mon, DBUS, "BecomeMonitor", GLib.Variant("(asu)", ([], 0)), None, "org.freedesktop.DBus.Monitoring",
         "/org/freedesktop/DBus")
    equal(call(conn, fixture, "Echo", GLib.Variant("(s)", (t,)), "(s)"), (t,), "Echo")
    check(spin(lambda: Gio.DBusMessageType.METHOD_RETURN in seen), "monitor did not see the reply")
    check(Gio.DBusMessageType.METHOD_CALL in seen, "monitor did not see the call")


def noreply():
    conn = connect()
    changes = []
    conn.signal_subscribe(DBUS, DBUS, "NameOwnerChanged", "/org/freedesktop/DBus", callee, Gio.DBusSignalFlags.NONE,
                          lambda c, s, p, i, m, params: changes.append(params.unpack()))
    owner = driver(conn, "GetNameOwner", GLib.Variant("(s)", (callee,)), "(s)")[0]
    try:
        call(conn, callee, "Hang")
    except GLib.Error as err:
        equal(Gio.DBusError.get_remote_error(err), DBUS + ".Error.NoReply", "error of the pending call")
    else:
        raise Failure("Hang() returned")
    check(spin(lambda: changes), "no NameOwnerChanged")
    equal(changes[0], (callee, owner, ""), "NameOwnerChanged")


main({"hello-unix": lambda: hello(address), "hello-tcp": lambda: hello(tcp_address), "names": names,
      "call": do_call, "signals": signals, "unicast": unicast, "fds": fds, "properties": properties,
      "monitor": monitor, "noreply": noreply})
