#!/usr/bin/python3
"""A system bus client that must live through `systemctl restart dbus`.

Usage: fdstore_client.py NAME

Owns NAME, exports /com/example/FdStore (com.example.FdStore: Echo, Pings)
and counts com.example.FdStore.Ping signals through a match rule. Prints
"ready UNIQUE" once it owns the name and "disconnected" when the bus drops
it, then exits.
"""
import sys

import dbus
import dbus.bus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

IFACE = 'com.example.FdStore'


class Checked(dbus.service.Object):
    def __init__(self, conn):
        super().__init__(conn, '/com/example/FdStore')
        self.pings = 0

    @dbus.service.method(IFACE, in_signature='s', out_signature='s')
    def Echo(self, text):
        return text

    @dbus.service.method(IFACE, in_signature='', out_signature='u')
    def Pings(self):
        return self.pings


def main():
    DBusGMainLoop(set_as_default=True)
    loop = GLib.MainLoop()
    conn = dbus.bus.BusConnection(dbus.bus.BUS_SYSTEM)
    conn.set_exit_on_disconnect(False)
    obj = Checked(conn)

    def ping(*_args):
        obj.pings += 1

    conn.add_signal_receiver(ping, signal_name='Ping', dbus_interface=IFACE)
    conn.request_name(sys.argv[1], dbus.bus.NAME_FLAG_DO_NOT_QUEUE)

    def gone(_conn):
        print('disconnected', flush=True)
        loop.quit()

    conn.call_on_disconnection(gone)
    print('ready', conn.get_unique_name(), flush=True)
    loop.run()


if __name__ == '__main__':
    main()
