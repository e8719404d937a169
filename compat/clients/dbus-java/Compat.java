package org.kdbusbridge;

import org.freedesktop.dbus.DBusInterface;
import org.freedesktop.dbus.DBusSignal;
import org.freedesktop.dbus.UInt32;
import org.freedesktop.dbus.exceptions.DBusException;

// dbus-java derives D-Bus interface and signal names from Java names, so this
// interface has to be org.kdbusbridge.Compat itself, signals nested in it.
public interface Compat extends DBusInterface {
    String Echo(String text);
    int Add(int a, int b);
    void Fail(String text);
    void EmitMatches();
    void EmitTo(String destination, String token);
    Pair<UInt32, String> Digest(byte[] data);
    byte[] Blob(UInt32 size);
    void Hang();

    class Tick extends DBusSignal {
        public final String a;
        public final String b;
        public Tick(String path, String a, String b) throws DBusException { super(path, a, b); this.a = a; this.b = b; }
    }

    class Tock extends DBusSignal {
        public final String a;
        public final String b;
        public Tock(String path, String a, String b) throws DBusException { super(path, a, b); this.a = a; this.b = b; }
    }

    class End extends DBusSignal {
        public final String text;
        public End(String path, String text) throws DBusException { super(path, text); this.text = text; }
    }

    class Unicast extends DBusSignal {
        public final String token;
        public Unicast(String path, String token) throws DBusException { super(path, token); this.token = token; }
    }
}
