#!/usr/bin/python3
"""The peer every matrix cell talks to, written against python3-dbus (libdbus).

usage: fixture.py ADDRESS service|callee

service: owns org.kdbusbridge.Compat.Fixture and answers the calls listed in
compat/README.md. callee: owns org.kdbusbridge.Compat.Callee and exits without
replying when Hang() is called. Prints "ready" once the name is owned.
"""
import hashlib
import os
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

IFACE = "org.kdbusbridge.Compat"
PATH = "/org/kdbusbridge/Compat"
PROPS = "org.freedesktop.DBus.Properties"


class Failed(dbus.DBusException):
    _dbus_error_name = IFACE + ".Error.Failed"


class Fixture(dbus.service.Object):
    def __init__(self, conn):
        super().__init__(conn, PATH)
        self.conn = conn
        self.count = 7

    @dbus.service.method(IFACE, in_signature="s", out_signature="s")
    def Echo(self, text):
        return text

    @dbus.service.method(IFACE, in_signature="ii", out_signature="i")
    def Add(self, a, b):
        return a + b

    @dbus.service.method(IFACE, in_signature="s", out_signature="")
    def Fail(self, text):
        raise Failed(text)

    @dbus.service.method(IFACE, in_signature="", out_signature="")
    def EmitMatches(self):
        base = PATH + "/ns"
        for path, member, a, b in [
            (base + "/a", "Tick", "no", "b1"),
            (PATH + "/nsx", "Tick", "yes", "b1"),
            (base, "Tick", "yes", "b2"),
            (base, "Tick", "yes", "b1"),
            (base + "/a/b", "Tick", "yes", "b1"),
            (base, "Tock", "yes", "b1"),
        ]:
            self._signal(path, member, "ss", [a, b])
        self._signal(PATH, "End", "s", ["end"])

    @dbus.service.method(IFACE, in_signature="ss", out_signature="")
    def EmitTo(self, destination, token):
        self._signal(PATH, "Unicast", "s", [token], destination)
        self._signal(PATH, "End", "s", [token])

    @dbus.service.method(IFACE, in_signature="h", out_signature="s")
    def ReadFd(self, handle):
        fd = handle.take()
        try:
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            pass
        with os.fdopen(fd, "rb") as f:
            return f.read(4096).decode()

    @dbus.service.method(IFACE, in_signature="s", out_signature="h")
    def MakeFd(self, content):
        r, w = os.pipe()
        os.write(w, content.encode())
        os.close(w)
        handle = dbus.types.UnixFd(r)
        os.close(r)
        return handle

    @dbus.service.method(IFACE, in_signature="ay", out_signature="us", byte_arrays=True)
    def Digest(self, data):
        return len(data), hashlib.sha256(bytes(data)).hexdigest()

    @dbus.service.method(IFACE, in_signature="u", out_signature="ay", byte_arrays=True)
    def Blob(self, size):
        return dbus.ByteArray(pattern(size))

    @dbus.service.method(PROPS, in_signature="ss", out_signature="v")
    def Get(self, iface, name):
        return self.GetAll(iface)[name]

    @dbus.service.method(PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        if iface != IFACE:
            raise dbus.DBusException("no such interface", name="org.freedesktop.DBus.Error.UnknownInterface")
        return {"Name": dbus.String("compat-fixture", variant_level=1),
                "Count": dbus.Int32(self.count, variant_level=1)}

    @dbus.service.method(PROPS, in_signature="ssv", out_signature="")
    def Set(self, iface, name, value):
        if iface != IFACE or name != "Count":
            raise dbus.DBusException("read-only", name="org.freedesktop.DBus.Error.PropertyReadOnly")
        self.count = int(value)

    def _signal(self, path, member, signature, args, destination=None):
        msg = dbus.lowlevel.SignalMessage(path, IFACE, member)
        if destination:
            msg.set_destination(destination)
        msg.append(*args, signature=signature)
        self.conn.send_message(msg)


class Callee(dbus.service.Object):
    @dbus.service.method(IFACE, in_signature="", out_signature="")
    def Hang(self):
        os._exit(0)


def pattern(size):
    block = bytes(i % 251 for i in range(251 * 64))
    return (block * (size // len(block) + 1))[:size]


def main():
    address, mode = sys.argv[1], sys.argv[2]
    DBusGMainLoop(set_as_default=True)
    conn = dbus.bus.BusConnection(address)
    if mode == "service":
        keep = [Fixture(conn), dbus.service.BusName(IFACE + ".Fixture", conn, do_not_queue=True)]
    else:
        keep = [Callee(conn, PATH), dbus.service.BusName(IFACE + ".Callee", conn, do_not_queue=True)]
    print("ready", flush=True)
    GLib.MainLoop().run()
    del keep


if __name__ == "__main__":
    main()
