package org.kdbusbridge;

import org.freedesktop.dbus.Position;
import org.freedesktop.dbus.Tuple;

// A method reply with two values: dbus-java maps it onto a Tuple subclass.
public final class Pair<A, B> extends Tuple {
    @Position(0) public final A first;
    @Position(1) public final B second;

    public Pair(A first, B second) {
        this.first = first;
        this.second = second;
    }
}
