#!/usr/bin/python3
"""Matrix driver for dbus-python (libdbus). usage: python-dbus.py SCENARIO"""
import os

import dbus
import dbus.lowlevel
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

from compat_common import (DBUS, END_RULE, EXPECTED_TICKS, IFACE, LARGE, MATCH_RULE, PATH, Failure,
                           address, callee, check, equal, fixture, main, pattern, sha256, tcp_address, token)

DBusGMainLoop(set_as_default=True)


def connect(addr=None):
    return dbus.bus.BusConnection(addr or address)


def proxy(conn, name=None):
    return dbus.Interface(conn.get_object(name or fixture, PATH, introspect=False), IFACE)


def collect(conn, until, seconds=5.0):
    """Run the main loop, handing every message to `until` until it returns True."""
    loop = GLib.MainLoop()
    seen = []

    def on_message(_conn, msg):
        seen.append(msg)
        if until(msg):
            loop.quit()
    conn.add_message_filter(on_message)
    timed_out = []
    GLib.timeout_add(int(seconds * 1000), lambda: (timed_out.append(1), loop.quit()))
    return loop, seen, timed_out


def hello(addr):
    conn = connect(addr)
    unique = conn.get_unique_name()
    check(unique.startswith(":"), "unique name %r" % unique)
    bus = dbus.Interface(conn.get_object(DBUS, "/org/freedesktop/DBus"), DBUS)
    equal(str(bus.GetNameOwner(unique)), unique, "GetNameOwner(self)")
    check(DBUS in [str(n) for n in bus.ListNames()], "ListNames lacks the driver")


def hello_unix():
    hello(address)


def hello_tcp():
    hello(tcp_address)


def names():
    a, b, c = connect(), connect(), connect()
    name = "org.kdbusbridge.Compat.N" + token()
    lost, acquired = [], []
    a.add_signal_receiver(lambda n: lost.append(str(n)), "NameLost", DBUS, DBUS, "/org/freedesktop/DBus")
    b.add_signal_receiver(lambda n: acquired.append(str(n)), "NameAcquired", DBUS, DBUS, "/org/freedesktop/DBus")
    equal(a.request_name(name, 1 | 4), 1, "A RequestName")
    equal(b.request_name(name, 4), 3, "B RequestName DO_NOT_QUEUE")
    equal(b.request_name(name, 0), 2, "B RequestName queued")
    bus = dbus.Interface(a.get_object(DBUS, "/org/freedesktop/DBus"), DBUS)
    equal([str(x) for x in bus.ListQueuedOwners(name)], [a.get_unique_name(), b.get_unique_name()], "ListQueuedOwners")
    equal(c.request_name(name, 2 | 4), 1, "C RequestName REPLACE_EXISTING")
    equal(str(bus.GetNameOwner(name)), c.get_unique_name(), "owner after replacement")
    equal(c.release_name(name), 1, "C ReleaseName")
    equal(str(bus.GetNameOwner(name)), b.get_unique_name(), "owner after release")
    loop = GLib.MainLoop()
    GLib.timeout_add(300, loop.quit)
    loop.run()
    check(name in lost, "A got no NameLost")
    check(name in acquired, "B got no NameAcquired")


def call():
    conn = connect()
    p = proxy(conn)
    t = token()
    equal(str(p.Echo(t)), t, "Echo")
    equal(int(p.Add(40, 2)), 42, "Add")
    try:
        p.Fail("boom")
    except dbus.DBusException as err:
        equal(err.get_dbus_name(), IFACE + ".Error.Failed", "error name")
        equal(err.get_dbus_message(), "boom", "error message")
    else:
        raise Failure("Fail() returned")
    try:
        dbus.Interface(conn.get_object(DBUS, "/org/freedesktop/DBus"), DBUS).GetNameOwner("org.kdbusbridge.Nobody")
    except dbus.DBusException as err:
        equal(err.get_dbus_name(), DBUS + ".Error.NameHasNoOwner", "GetNameOwner(nobody)")
    else:
        raise Failure("GetNameOwner(nobody) returned")


def signals():
    conn = connect()
    conn.add_match_string(MATCH_RULE)
    conn.add_match_string(END_RULE)
    ticks = []
    is_end = lambda m: m.get_type() == 4 and m.get_member() == "End"
    loop, seen, timed_out = collect(conn, is_end)
    proxy(conn).EmitMatches()
    loop.run()
    check(not timed_out, "no End signal")
    for m in seen:
        if m.get_type() == 4 and m.get_member() in ("Tick", "Tock"):
            ticks.append(m.get_path())
    equal(ticks, EXPECTED_TICKS, "matched signals")


def unicast():
    conn, observer = connect(), connect()
    observer.add_match_string("type='signal',interface='%s'" % IFACE)
    t = token()
    got, leaked, ended = [], [], []
    loop = GLib.MainLoop()

    def settle():
        if got and ended:
            loop.quit()

    def on_conn(_c, m):
        if m.get_type() == 4 and m.get_member() == "Unicast":
            got.append([str(x) for x in m.get_args_list()])
            settle()

    def on_observer(_c, m):
        if m.get_type() == 4 and m.get_member() == "Unicast":
            leaked.append(m)
        if m.get_type() == 4 and m.get_member() == "End":
            ended.append(m)
            settle()
    conn.add_message_filter(on_conn)
    observer.add_message_filter(on_observer)
    GLib.timeout_add(5000, loop.quit)
    proxy(conn).EmitTo(conn.get_unique_name(), t)
    loop.run()
    equal(got[:1], [[t]], "unicast signal received by its destination")
    check(ended, "observer saw no End")
    check(not leaked, "a unicast signal reached a non-recipient")


def fds():
    conn = connect()
    p = proxy(conn)
    t = token()
    r, w = os.pipe()
    os.write(w, t.encode())
    os.close(w)
    equal(str(p.ReadFd(dbus.types.UnixFd(r))), t, "ReadFd")
    os.close(r)
    fd = p.MakeFd(t).take()
    with os.fdopen(fd, "rb") as f:
        equal(f.read().decode(), t, "MakeFd content")


def properties():
    conn = connect()
    obj = conn.get_object(fixture, PATH, introspect=False)
    props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
    equal(str(props.Get(IFACE, "Name")), "compat-fixture", "Get Name")
    props.Set(IFACE, "Count", dbus.Int32(42))
    equal(int(props.Get(IFACE, "Count")), 42, "Get Count after Set")
    equal(int(props.GetAll(IFACE)["Count"]), 42, "GetAll Count")
    xml = str(dbus.Interface(obj, "org.freedesktop.DBus.Introspectable").Introspect())
    check('<interface name="%s">' % IFACE in xml and 'name="Echo"' in xml, "Introspect lacks the interface")


def large():
    conn = connect()
    p = proxy(conn)
    data = pattern(LARGE)
    n, digest = p.Digest(dbus.ByteArray(data), timeout=120)
    equal((int(n), str(digest)), (LARGE, sha256(data)), "Digest of 32 MiB")
    blob = p.Blob(dbus.UInt32(LARGE), byte_arrays=True, timeout=120)
    equal((len(blob), sha256(blob)), (LARGE, sha256(data)), "32 MiB reply")


def monitor():
    mon, conn = connect(), connect()
    t = token()
    dbus.Interface(mon.get_object(DBUS, "/org/freedesktop/DBus"), "org.freedesktop.DBus.Monitoring").BecomeMonitor([], dbus.UInt32(0))
    got = {}

    def until(m):
        args = [str(a) for a in m.get_args_list()] if m.get_type() in (1, 2) else []
        if t in args:
            got[m.get_type()] = True
        return 1 in got and 2 in got
    loop, _, timed_out = collect(mon, until)
    equal(str(proxy(conn).Echo(t)), t, "Echo")
    loop.run()
    check(1 in got, "monitor did not see the call")
    check(2 in got, "monitor did not see the reply")


def noreply():
    conn = connect()
    conn.add_match_string("type='signal',sender='%s',member='NameOwnerChanged',arg0='%s'" % (DBUS, callee))
    bus = dbus.Interface(conn.get_object(DBUS, "/org/freedesktop/DBus"), DBUS)
    owner = str(bus.GetNameOwner(callee))
    changes = []
    loop, seen, timed_out = collect(conn, lambda m: m.get_member() == "NameOwnerChanged")
    try:
        proxy(conn, callee).Hang(timeout=20)
    except dbus.DBusException as err:
        equal(err.get_dbus_name(), DBUS + ".Error.NoReply", "error of the pending call")
    else:
        raise Failure("Hang() returned")
    if not [m for m in seen if m.get_member() == "NameOwnerChanged"]:
        loop.run()
    for m in seen:
        if m.get_member() == "NameOwnerChanged":
            changes.append([str(a) for a in m.get_args_list()])
    equal(changes[:1], [[callee, owner, ""]], "NameOwnerChanged")


main({"hello-unix": hello_unix, "hello-tcp": hello_tcp, "names": names, "call": call, "signals": signals,
      "unicast": unicast, "fds": fds, "properties": properties, "large": large, "monitor": monitor,
      "noreply": noreply})
