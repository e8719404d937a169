package org.kdbusbridge;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

import org.freedesktop.DBus;
import org.freedesktop.dbus.DBusConnection;
import org.freedesktop.dbus.DBusMatchRule;
import org.freedesktop.dbus.DBusSignal;
import org.freedesktop.dbus.Message;
import org.freedesktop.dbus.MethodCall;
import org.freedesktop.dbus.MethodReturn;
import org.freedesktop.dbus.Transport;
import org.freedesktop.dbus.UInt32;
import org.freedesktop.dbus.Variant;
import org.freedesktop.dbus.exceptions.DBusExecutionException;

/** Matrix driver for dbus-java (Debian's libdbus-java 2.8). usage: Driver SCENARIO */
public final class Driver {
    static final String IFACE = "org.kdbusbridge.Compat";
    static final String PATH = "/org/kdbusbridge/Compat";
    static final String BUS = "org.freedesktop.DBus";
    static final String BUS_PATH = "/org/freedesktop/DBus";
    static final int LARGE = 32 * 1024 * 1024;
    static final String FIXTURE = envOr("COMPAT_FIXTURE", IFACE + ".Fixture");
    static final String CALLEE = envOr("COMPAT_CALLEE", IFACE + ".Callee");
    static final AtomicInteger connections = new AtomicInteger();

    static final class Failure extends RuntimeException {
        Failure(String why) { super(why); }
    }

    static String envOr(String key, String fallback) {
        String v = System.getenv(key);
        return v == null || v.isEmpty() ? fallback : v;
    }

    static void check(boolean ok, String why) {
        if (!ok) throw new Failure(why);
    }

    static void equal(Object got, Object want, String what) {
        boolean same = got instanceof Object[] && want instanceof Object[]
                ? Arrays.deepEquals((Object[]) got, (Object[]) want) : java.util.Objects.equals(got, want);
        check(same, what + ": got " + show(got) + ", want " + show(want));
    }

    static String show(Object o) {
        return o instanceof Object[] ? Arrays.deepToString((Object[]) o) : String.valueOf(o);
    }

    static String token() {
        byte[] b = new byte[6];
        new java.security.SecureRandom().nextBytes(b);
        return "t" + HexFormat.of().formatHex(b);
    }

    // DBusConnection.getConnection shares one connection per address string;
    // an extra key the transport ignores gives each caller its own connection.
    static DBusConnection connect(String address) throws Exception {
        DBusConnection c = DBusConnection.getConnection(address + ",compatconn=" + connections.incrementAndGet());
        // One dispatch thread, so that signal handlers run in arrival order.
        c.changeThreadCount((byte) 1);
        return c;
    }

    static DBusConnection connect() throws Exception {
        return connect(System.getenv("COMPAT_ADDRESS"));
    }

    static DBus bus(DBusConnection c) throws Exception {
        return c.getRemoteObject(BUS, BUS_PATH, DBus.class);
    }

    static Compat fixture(DBusConnection c) throws Exception {
        return c.getRemoteObject(FIXTURE, PATH, Compat.class);
    }

    static String errorName(DBusExecutionException e) {
        return e.getType() != null ? e.getType() : e.getClass().getName();
    }

    /** Feeds signals of `type` into `queue`; without `keepRule` the match rule dbus-java adds is taken away again. */
    static <T extends DBusSignal> void listen(DBusConnection c, Class<T> type, BlockingQueue<DBusSignal> queue, boolean keepRule)
            throws Exception {
        c.addSigHandler(type, queue::add);
        if (!keepRule) bus(c).RemoveMatch(new DBusMatchRule(type).toString());
    }

    static List<DBusSignal> waitSignal(BlockingQueue<DBusSignal> queue, Predicate<DBusSignal> stop, String what) throws Exception {
        List<DBusSignal> seen = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (true) {
            DBusSignal s = queue.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            if (s == null) throw new Failure(what);
            seen.add(s);
            if (stop.test(s)) return seen;
        }
    }

    static void hello(String address) throws Exception {
        check(address != null && !address.isEmpty(), "no address");
        DBusConnection c = connect(address);
        String me = c.getUniqueName();
        check(me != null && me.startsWith(":"), "unique name " + me);
        equal(bus(c).GetNameOwner(me), me, "GetNameOwner(self)");
        check(Arrays.asList(bus(c).ListNames()).contains(BUS), "ListNames lacks the driver");
    }

    static void names() throws Exception {
        DBusConnection a = connect(), b = connect(), c = connect();
        BlockingQueue<DBusSignal> qa = new LinkedBlockingQueue<>(), qb = new LinkedBlockingQueue<>();
        listen(a, DBus.NameLost.class, qa, true);
        listen(b, DBus.NameAcquired.class, qb, true);
        String name = IFACE + ".N" + token();
        UInt32 primary = new UInt32(DBus.DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER);
        equal(bus(a).RequestName(name, new UInt32(DBus.DBUS_NAME_FLAG_ALLOW_REPLACEMENT | DBus.DBUS_NAME_FLAG_DO_NOT_QUEUE)),
                primary, "A RequestName");
        equal(bus(b).RequestName(name, new UInt32(DBus.DBUS_NAME_FLAG_DO_NOT_QUEUE)),
                new UInt32(DBus.DBUS_REQUEST_NAME_REPLY_EXISTS), "B RequestName DO_NOT_QUEUE");
        equal(bus(b).RequestName(name, new UInt32(0)), new UInt32(DBus.DBUS_REQUEST_NAME_REPLY_IN_QUEUE), "B RequestName queued");
        equal(bus(a).ListQueuedOwners(name), new String[] {a.getUniqueName(), b.getUniqueName()}, "ListQueuedOwners");
        equal(bus(c).RequestName(name, new UInt32(DBus.DBUS_NAME_FLAG_REPLACE_EXISTING | DBus.DBUS_NAME_FLAG_DO_NOT_QUEUE)),
                primary, "C RequestName REPLACE_EXISTING");
        equal(bus(a).GetNameOwner(name), c.getUniqueName(), "owner after replacement");
        equal(bus(c).ReleaseName(name), new UInt32(DBus.DBUS_RELEASE_NAME_REPLY_RELEASED), "C ReleaseName");
        equal(bus(a).GetNameOwner(name), b.getUniqueName(), "owner after release");
        waitSignal(qa, s -> s instanceof DBus.NameLost && ((DBus.NameLost) s).name.equals(name), "A got no NameLost");
        waitSignal(qb, s -> s instanceof DBus.NameAcquired && ((DBus.NameAcquired) s).name.equals(name), "B got no NameAcquired");
    }

    static void call() throws Exception {
        DBusConnection c = connect();
        String t = token();
        equal(fixture(c).Echo(t), t, "Echo");
        equal(fixture(c).Add(40, 2), 42, "Add");
        try {
            fixture(c).Fail("boom");
            throw new Failure("Fail() returned");
        } catch (DBusExecutionException e) {
            equal(errorName(e) + " " + e.getMessage(), IFACE + ".Error.Failed boom", "error");
        }
        try {
            bus(c).GetNameOwner("org.kdbusbridge.Nobody");
            throw new Failure("GetNameOwner(nobody) returned");
        } catch (DBusExecutionException e) {
            equal(errorName(e), BUS + ".Error.NameHasNoOwner", "GetNameOwner(nobody)");
        }
    }

    static void signals() throws Exception {
        DBusConnection c = connect();
        BlockingQueue<DBusSignal> q = new LinkedBlockingQueue<>();
        listen(c, Compat.Tick.class, q, false);
        listen(c, Compat.Tock.class, q, false);
        listen(c, Compat.End.class, q, true);
        bus(c).AddMatch("type='signal',interface='" + IFACE + "',member='Tick',arg0='yes',arg1='b1',path_namespace='" + PATH + "/ns'");
        fixture(c).EmitMatches();
        List<String> ticks = new ArrayList<>();
        List<DBusSignal> seen = waitSignal(q, s -> s instanceof Compat.End, "no End signal");
        // dbus-java 2.8 can run handlers on more than one thread even when
        // told to use one (workers being retired still take a signal), so a
        // Tick can reach the queue after End: collect stragglers, compare
        // without order.
        for (DBusSignal s; (s = q.poll(500, TimeUnit.MILLISECONDS)) != null; ) seen.add(s);
        for (DBusSignal s : seen) {
            if (!(s instanceof Compat.End)) ticks.add(s.getPath());
        }
        ticks.sort(null);
        equal(ticks, List.of(PATH + "/ns", PATH + "/ns/a/b"), "matched signals");
    }

    static void unicast() throws Exception {
        DBusConnection c = connect(), observer = connect();
        BlockingQueue<DBusSignal> got = new LinkedBlockingQueue<>(), watched = new LinkedBlockingQueue<>();
        listen(c, Compat.Unicast.class, got, false);
        listen(observer, Compat.Unicast.class, watched, false);
        listen(observer, Compat.End.class, watched, false);
        bus(observer).AddMatch("type='signal',interface='" + IFACE + "'");
        String t = token();
        fixture(c).EmitTo(c.getUniqueName(), t);
        List<DBusSignal> seen = waitSignal(got, s -> s instanceof Compat.Unicast, "unicast signal missing");
        equal(((Compat.Unicast) seen.get(seen.size() - 1)).token, t, "unicast body");
        for (DBusSignal s : waitSignal(watched, s -> s instanceof Compat.End, "observer saw no End")) {
            check(!(s instanceof Compat.Unicast), "a unicast signal reached a non-recipient");
        }
    }

    static Object unwrap(Object v) {
        return v instanceof Variant ? ((Variant<?>) v).getValue() : v;
    }

    static void properties() throws Exception {
        DBusConnection c = connect();
        DBus.Properties p = c.getRemoteObject(FIXTURE, PATH, DBus.Properties.class);
        equal(unwrap(p.Get(IFACE, "Name")), "compat-fixture", "Get Name");
        p.Set(IFACE, "Count", 42);
        equal(unwrap(p.Get(IFACE, "Count")), 42, "Get Count after Set");
        Map<String, Variant> all = p.GetAll(IFACE);
        equal(all.containsKey("Count") ? all.get("Count").getValue() : null, 42, "GetAll Count");
        String xml = c.getRemoteObject(FIXTURE, PATH, DBus.Introspectable.class).Introspect();
        check(xml.contains("<interface name=\"" + IFACE + "\">") && xml.contains("name=\"Echo\""), "Introspect lacks the interface");
    }

    static void large() throws Exception {
        // dbus-java unmarshals a 32 MiB reply byte by byte: 16-26 s on two busy
        // cores on every bus, across its default 20 s call timeout. The matrix
        // gives a large cell 90 s.
        MethodCall.setDefaultTimeout(85000);
        DBusConnection c = connect();
        byte[] data = new byte[LARGE];
        for (int i = 0; i < data.length; i++) data[i] = (byte) (i % 251);
        String digest = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        Pair<UInt32, String> r = fixture(c).Digest(data);
        equal(r.first + " " + r.second, LARGE + " " + digest, "Digest of 32 MiB");
        byte[] blob = fixture(c).Blob(new UInt32(LARGE));
        check(Arrays.equals(blob, data), "32 MiB reply differs (" + blob.length + " bytes)");
    }

    // dbus-java's connection object answers every method call it receives, which
    // a monitor must not do: the monitor is dbus-java's transport, authentication
    // and message reader/writer without the dispatching connection on top.
    static void monitor() throws Exception {
        Transport mon = new Transport(System.getenv("COMPAT_ADDRESS"));
        mon.mout.writeMessage(new MethodCall(BUS, BUS_PATH, BUS, "Hello", (byte) 0, null));
        MethodCall become = new MethodCall(BUS, BUS_PATH, BUS + ".Monitoring", "BecomeMonitor", (byte) 0, "asu",
                new String[0], new UInt32(0));
        mon.mout.writeMessage(become);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (true) {
            Message m = mon.min.readMessage();
            check(System.nanoTime() < deadline, "no reply to BecomeMonitor");
            if (m instanceof org.freedesktop.dbus.Error && m.getReplySerial() == become.getSerial()) {
                throw new Failure("BecomeMonitor: " + m.getName() + " " + show(m.getParameters()));
            }
            if (m instanceof MethodReturn && m.getReplySerial() == become.getSerial()) break;
        }
        DBusConnection c = connect();
        String t = token();
        equal(fixture(c).Echo(t), t, "Echo");
        boolean call = false, reply = false;
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!(call && reply)) {
            check(System.nanoTime() < deadline, call ? "monitor did not see the reply" : "monitor did not see the call");
            Message m = mon.min.readMessage();
            if (m == null) continue;
            Object[] body = m.getParameters();
            if (body == null || body.length != 1 || !t.equals(body[0])) continue;
            if (m instanceof MethodCall) call = true;
            if (m instanceof MethodReturn) reply = true;
        }
    }

    static void noreply() throws Exception {
        DBusConnection c = connect();
        BlockingQueue<DBusSignal> q = new LinkedBlockingQueue<>();
        listen(c, DBus.NameOwnerChanged.class, q, true);
        String owner = bus(c).GetNameOwner(CALLEE);
        try {
            c.getRemoteObject(CALLEE, PATH, Compat.class).Hang();
            throw new Failure("Hang() returned");
        } catch (DBusExecutionException e) {
            equal(errorName(e), BUS + ".Error.NoReply", "error of the pending call");
        }
        List<DBusSignal> seen = waitSignal(q, s -> ((DBus.NameOwnerChanged) s).name.equals(CALLEE), "no NameOwnerChanged");
        DBus.NameOwnerChanged n = (DBus.NameOwnerChanged) seen.get(seen.size() - 1);
        equal(List.of(n.name, n.old_owner, n.new_owner), List.of(CALLEE, owner, ""), "NameOwnerChanged");
    }

    public static void main(String[] args) {
        String scenario = args.length > 0 ? args[0] : "";
        int status = 0;
        try {
            switch (scenario) {
                case "hello-unix": hello(System.getenv("COMPAT_ADDRESS")); break;
                case "hello-tcp": hello(System.getenv("COMPAT_TCP_ADDRESS")); break;
                case "names": names(); break;
                case "call": call(); break;
                case "signals": signals(); break;
                case "unicast": unicast(); break;
                case "properties": properties(); break;
                case "large": large(); break;
                case "monitor": monitor(); break;
                case "noreply": noreply(); break;
                default:
                    // fds: dbus-java 2.8 has no UNIX_FD type.
                    System.err.println("not expressible with this client");
                    status = 77;
            }
        } catch (Throwable e) {
            String why = e instanceof Failure ? e.getMessage() : e.getClass().getName() + ": " + e.getMessage();
            System.err.println(String.valueOf(why).replace('\n', ' '));
            status = 1;
        }
        System.err.flush();
        // dbus-java's connection threads are not daemons: leave without waiting for them.
        Runtime.getRuntime().halt(status);
    }
}
