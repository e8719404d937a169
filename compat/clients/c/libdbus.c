/* Matrix driver written directly against libdbus. usage: c-libdbus SCENARIO */
#include <dbus/dbus.h>
#include <fcntl.h>

#include "common.h"

#define TIMEOUT_MS 20000

static DBusConnection *connect_to(const char *address) {
    DBusError err;
    dbus_error_init(&err);
    DBusConnection *c = dbus_connection_open_private(address, &err);
    if (!c) fail("connect %s: %s", address, err.message);
    if (!dbus_bus_register(c, &err)) fail("Hello: %s", err.message);
    return c;
}

static DBusMessage *new_call(const char *dest, const char *path, const char *iface, const char *member) {
    DBusMessage *m = dbus_message_new_method_call(dest, path, iface, member);
    if (!m) fail("out of memory");
    return m;
}

/* Sends `m` (consumed) and returns the reply; an error reply fills `err`
 * and returns NULL. */
static DBusMessage *call_msg(DBusConnection *c, DBusMessage *m, DBusError *err) {
    DBusMessage *r = dbus_connection_send_with_reply_and_block(c, m, TIMEOUT_MS, err);
    dbus_message_unref(m);
    return r;
}

static DBusMessage *must_call(DBusConnection *c, DBusMessage *m, const char *what) {
    DBusError err;
    dbus_error_init(&err);
    DBusMessage *r = call_msg(c, m, &err);
    if (!r) fail("%s: %s: %s", what, err.name, err.message);
    return r;
}

static const char *reply_string(DBusMessage *r, const char *what) {
    DBusError err;
    const char *s = NULL;
    dbus_error_init(&err);
    if (!dbus_message_get_args(r, &err, DBUS_TYPE_STRING, &s, DBUS_TYPE_INVALID)) fail("%s: %s", what, err.message);
    return s;
}

static DBusMessage *driver_call1(DBusConnection *c, const char *member, const char *arg) {
    DBusMessage *m = new_call(DBUS_NAME, DBUS_OPATH, DBUS_NAME, member);
    if (arg) dbus_message_append_args(m, DBUS_TYPE_STRING, &arg, DBUS_TYPE_INVALID);
    return must_call(c, m, member);
}

static void get_name_owner(DBusConnection *c, const char *name, char *out, size_t size) {
    DBusMessage *r = driver_call1(c, "GetNameOwner", name);
    snprintf(out, size, "%s", reply_string(r, "GetNameOwner"));
    dbus_message_unref(r);
}

static void add_match(DBusConnection *c, const char *rule) {
    DBusError err;
    dbus_error_init(&err);
    dbus_bus_add_match(c, rule, &err);
    if (dbus_error_is_set(&err)) fail("AddMatch: %s", err.message);
}

/* Next incoming message (already queued or read within the deadline). */
static DBusMessage *next_message(DBusConnection *c, double deadline) {
    for (;;) {
        DBusMessage *m = dbus_connection_pop_message(c);
        if (m) return m;
        double left = deadline - now_s();
        if (left <= 0) return NULL;
        if (!dbus_connection_read_write(c, (int)(left * 1000) + 1)) fail("disconnected");
    }
}

static int is_signal(DBusMessage *m, const char *iface, const char *member) {
    return dbus_message_is_signal(m, iface, member);
}

static void hello(const char *address) {
    DBusConnection *c = connect_to(address);
    const char *unique = dbus_bus_get_unique_name(c);
    CHECK(unique && unique[0] == ':', "unique name %s", unique ? unique : "(null)");
    char owner[256];
    get_name_owner(c, unique, owner, sizeof owner);
    EQUAL_STR(owner, unique, "GetNameOwner(self)");
    DBusMessage *r = driver_call1(c, "ListNames", NULL);
    char **names = NULL;
    int n = 0, found = 0;
    DBusError err;
    dbus_error_init(&err);
    if (!dbus_message_get_args(r, &err, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &names, &n, DBUS_TYPE_INVALID)) fail("ListNames: %s", err.message);
    for (int i = 0; i < n; i++) found |= strcmp(names[i], DBUS_NAME) == 0;
    CHECK(found, "ListNames lacks the driver");
    dbus_free_string_array(names);
    dbus_message_unref(r);
}
static void hello_unix(void) { hello(ADDRESS); }
static void hello_tcp(void) { hello(TCP_ADDRESS); }

static int request(DBusConnection *c, const char *name, unsigned flags) {
    DBusError err;
    dbus_error_init(&err);
    int r = dbus_bus_request_name(c, name, flags, &err);
    if (r < 0) fail("RequestName: %s", err.message);
    return r;
}

static void wait_name_signal(DBusConnection *c, const char *member, const char *name, const char *what) {
    double deadline = now_s() + 5;
    DBusMessage *m;
    while ((m = next_message(c, deadline))) {
        const char *arg = NULL;
        int hit = is_signal(m, DBUS_NAME, member) && dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &arg, DBUS_TYPE_INVALID)
                  && strcmp(arg, name) == 0;
        dbus_message_unref(m);
        if (hit) return;
    }
    fail("%s", what);
}

static void names(void) {
    DBusConnection *a = connect_to(ADDRESS), *b = connect_to(ADDRESS), *c = connect_to(ADDRESS);
    char t[16], name[64], owner[256];
    token(t);
    snprintf(name, sizeof name, "org.kdbusbridge.Compat.N%s", t);
    EQUAL_INT(request(a, name, DBUS_NAME_FLAG_ALLOW_REPLACEMENT | DBUS_NAME_FLAG_DO_NOT_QUEUE), 1, "A RequestName");
    EQUAL_INT(request(b, name, DBUS_NAME_FLAG_DO_NOT_QUEUE), 3, "B RequestName DO_NOT_QUEUE");
    EQUAL_INT(request(b, name, 0), 2, "B RequestName queued");
    DBusMessage *r = driver_call1(a, "ListQueuedOwners", name);
    char **q = NULL;
    int n = 0;
    if (!dbus_message_get_args(r, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &q, &n, DBUS_TYPE_INVALID)) fail("ListQueuedOwners: bad reply");
    EQUAL_INT(n, 2, "ListQueuedOwners length");
    EQUAL_STR(q[0], dbus_bus_get_unique_name(a), "ListQueuedOwners[0]");
    EQUAL_STR(q[1], dbus_bus_get_unique_name(b), "ListQueuedOwners[1]");
    dbus_free_string_array(q);
    dbus_message_unref(r);
    EQUAL_INT(request(c, name, DBUS_NAME_FLAG_REPLACE_EXISTING | DBUS_NAME_FLAG_DO_NOT_QUEUE), 1, "C RequestName REPLACE_EXISTING");
    get_name_owner(a, name, owner, sizeof owner);
    EQUAL_STR(owner, dbus_bus_get_unique_name(c), "owner after replacement");
    DBusError err;
    dbus_error_init(&err);
    EQUAL_INT(dbus_bus_release_name(c, name, &err), 1, "C ReleaseName");
    get_name_owner(a, name, owner, sizeof owner);
    EQUAL_STR(owner, dbus_bus_get_unique_name(b), "owner after release");
    wait_name_signal(a, "NameLost", name, "A got no NameLost");
    wait_name_signal(b, "NameAcquired", name, "B got no NameAcquired");
}

static void call(void) {
    DBusConnection *c = connect_to(ADDRESS);
    char t[16];
    const char *tp = t;
    token(t);
    DBusMessage *m = new_call(FIXTURE, OPATH, IFACE, "Echo");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &tp, DBUS_TYPE_INVALID);
    DBusMessage *r = must_call(c, m, "Echo");
    EQUAL_STR(reply_string(r, "Echo"), t, "Echo");
    dbus_message_unref(r);
    dbus_int32_t x = 40, y = 2, sum = 0;
    m = new_call(FIXTURE, OPATH, IFACE, "Add");
    dbus_message_append_args(m, DBUS_TYPE_INT32, &x, DBUS_TYPE_INT32, &y, DBUS_TYPE_INVALID);
    r = must_call(c, m, "Add");
    if (!dbus_message_get_args(r, NULL, DBUS_TYPE_INT32, &sum, DBUS_TYPE_INVALID)) fail("Add: bad reply");
    EQUAL_INT(sum, 42, "Add");
    dbus_message_unref(r);
    const char *boom = "boom";
    m = new_call(FIXTURE, OPATH, IFACE, "Fail");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &boom, DBUS_TYPE_INVALID);
    DBusError err;
    dbus_error_init(&err);
    CHECK(!call_msg(c, m, &err), "Fail() returned");
    EQUAL_STR(err.name, IFACE ".Error.Failed", "error name");
    EQUAL_STR(err.message, "boom", "error message");
    dbus_error_free(&err);
    const char *nobody = "org.kdbusbridge.Nobody";
    m = new_call(DBUS_NAME, DBUS_OPATH, DBUS_NAME, "GetNameOwner");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &nobody, DBUS_TYPE_INVALID);
    CHECK(!call_msg(c, m, &err), "GetNameOwner(nobody) returned");
    EQUAL_STR(err.name, DBUS_NAME ".Error.NameHasNoOwner", "GetNameOwner(nobody)");
}

static void signals(void) {
    DBusConnection *c = connect_to(ADDRESS);
    add_match(c, MATCH_RULE);
    add_match(c, END_RULE);
    dbus_message_unref(must_call(c, new_call(FIXTURE, OPATH, IFACE, "EmitMatches"), "EmitMatches"));
    const char *want[] = {TICK_1, TICK_2};
    int n = 0, ended = 0;
    double deadline = now_s() + 5;
    DBusMessage *m;
    while (!ended && (m = next_message(c, deadline))) {
        if (is_signal(m, IFACE, "Tick") || is_signal(m, IFACE, "Tock")) {
            CHECK(n < 2, "matched signals: unexpected extra %s", dbus_message_get_path(m));
            EQUAL_STR(dbus_message_get_path(m), want[n], "matched signal path");
            n++;
        }
        ended = is_signal(m, IFACE, "End");
        dbus_message_unref(m);
    }
    CHECK(ended, "no End signal");
    EQUAL_INT(n, 2, "matched signals");
}

static void unicast(void) {
    DBusConnection *c = connect_to(ADDRESS), *observer = connect_to(ADDRESS);
    add_match(observer, "type='signal',interface='" IFACE "'");
    char t[16];
    token(t);
    const char *me = dbus_bus_get_unique_name(c), *tp = t;
    DBusMessage *m = new_call(FIXTURE, OPATH, IFACE, "EmitTo");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &me, DBUS_TYPE_STRING, &tp, DBUS_TYPE_INVALID);
    dbus_message_unref(must_call(c, m, "EmitTo"));
    double deadline = now_s() + 5;
    int got = 0;
    while (!got && (m = next_message(c, deadline))) {
        if (is_signal(m, IFACE, "Unicast")) {
            EQUAL_STR(reply_string(m, "Unicast"), t, "unicast body");
            got = 1;
        }
        dbus_message_unref(m);
    }
    CHECK(got, "unicast signal missing");
    int ended = 0;
    while (!ended && (m = next_message(observer, deadline))) {
        CHECK(!is_signal(m, IFACE, "Unicast"), "a unicast signal reached a non-recipient");
        ended = is_signal(m, IFACE, "End");
        dbus_message_unref(m);
    }
    CHECK(ended, "observer saw no End");
}

static void fds(void) {
    DBusConnection *c = connect_to(ADDRESS);
    CHECK(dbus_connection_can_send_type(c, DBUS_TYPE_UNIX_FD), "fd passing not negotiated");
    char t[16], buf[64];
    const char *tp = t;
    token(t);
    int p[2];
    if (pipe(p) != 0) fail("pipe");
    CHECK(write(p[1], t, strlen(t)) == (ssize_t)strlen(t), "write");
    close(p[1]);
    DBusMessage *m = new_call(FIXTURE, OPATH, IFACE, "ReadFd");
    dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &p[0], DBUS_TYPE_INVALID);
    close(p[0]);
    DBusMessage *r = must_call(c, m, "ReadFd");
    EQUAL_STR(reply_string(r, "ReadFd"), t, "ReadFd");
    dbus_message_unref(r);
    m = new_call(FIXTURE, OPATH, IFACE, "MakeFd");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &tp, DBUS_TYPE_INVALID);
    r = must_call(c, m, "MakeFd");
    int fd = -1;
    if (!dbus_message_get_args(r, NULL, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_INVALID)) fail("MakeFd: no fd in the reply");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    EQUAL_STR(buf, t, "MakeFd content");
}

static DBusMessage *prop_call(const char *member, const char *name) {
    const char *iface = IFACE;
    DBusMessage *m = new_call(FIXTURE, OPATH, DBUS_INTERFACE_PROPERTIES, member);
    dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_INVALID);
    if (name) dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
    return m;
}

/* Reads the variant at `it` into a basic value after checking its type. */
static void variant_basic(DBusMessageIter *it, int type, void *out, const char *what) {
    DBusMessageIter v;
    CHECK(dbus_message_iter_get_arg_type(it) == DBUS_TYPE_VARIANT, "%s: not a variant", what);
    dbus_message_iter_recurse(it, &v);
    CHECK(dbus_message_iter_get_arg_type(&v) == type, "%s: variant holds '%c'", what, dbus_message_iter_get_arg_type(&v));
    dbus_message_iter_get_basic(&v, out);
}

static void properties(void) {
    DBusConnection *c = connect_to(ADDRESS);
    DBusMessageIter it, sub;
    const char *s = NULL;
    dbus_int32_t count = 0;
    DBusMessage *r = must_call(c, prop_call("Get", "Name"), "Get Name");
    dbus_message_iter_init(r, &it);
    variant_basic(&it, DBUS_TYPE_STRING, &s, "Get Name");
    EQUAL_STR(s, "compat-fixture", "Get Name");
    dbus_message_unref(r);
    DBusMessage *m = prop_call("Set", "Count");
    count = 42;
    dbus_message_iter_init_append(m, &it);
    dbus_message_iter_open_container(&it, DBUS_TYPE_VARIANT, "i", &sub);
    dbus_message_iter_append_basic(&sub, DBUS_TYPE_INT32, &count);
    dbus_message_iter_close_container(&it, &sub);
    dbus_message_unref(must_call(c, m, "Set Count"));
    r = must_call(c, prop_call("Get", "Count"), "Get Count");
    dbus_message_iter_init(r, &it);
    count = 0;
    variant_basic(&it, DBUS_TYPE_INT32, &count, "Get Count");
    EQUAL_INT(count, 42, "Get Count after Set");
    dbus_message_unref(r);
    r = must_call(c, prop_call("GetAll", NULL), "GetAll");
    dbus_message_iter_init(r, &it);
    CHECK(dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY, "GetAll: not a dict");
    dbus_message_iter_recurse(&it, &sub);
    int found = 0;
    for (; dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_DICT_ENTRY; dbus_message_iter_next(&sub)) {
        DBusMessageIter e;
        const char *key;
        dbus_message_iter_recurse(&sub, &e);
        dbus_message_iter_get_basic(&e, &key);
        dbus_message_iter_next(&e);
        if (strcmp(key, "Count") == 0) {
            count = 0;
            variant_basic(&e, DBUS_TYPE_INT32, &count, "GetAll Count");
            EQUAL_INT(count, 42, "GetAll Count");
            found = 1;
        }
    }
    CHECK(found, "GetAll lacks Count");
    dbus_message_unref(r);
    r = must_call(c, new_call(FIXTURE, OPATH, DBUS_INTERFACE_INTROSPECTABLE, "Introspect"), "Introspect");
    s = reply_string(r, "Introspect");
    CHECK(strstr(s, "<interface name=\"" IFACE "\">") && strstr(s, "name=\"Echo\""), "Introspect lacks the interface");
    dbus_message_unref(r);
}

static void large(void) {
    DBusConnection *c = connect_to(ADDRESS);
    unsigned char *data = pattern(LARGE);
    char want[65];
    sha256_hex(data, LARGE, want);
    DBusMessage *m = new_call(FIXTURE, OPATH, IFACE, "Digest");
    const unsigned char *dp = data;
    int len = (int)LARGE;
    dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &dp, len, DBUS_TYPE_INVALID);
    DBusError err;
    dbus_error_init(&err);
    DBusMessage *r = dbus_connection_send_with_reply_and_block(c, m, 120000, &err);
    dbus_message_unref(m);
    if (!r) fail("Digest: %s: %s", err.name, err.message);
    dbus_uint32_t n = 0;
    const char *digest = NULL;
    if (!dbus_message_get_args(r, NULL, DBUS_TYPE_UINT32, &n, DBUS_TYPE_STRING, &digest, DBUS_TYPE_INVALID)) fail("Digest: bad reply");
    EQUAL_INT(n, LARGE, "Digest length");
    EQUAL_STR(digest, want, "Digest of 32 MiB");
    dbus_message_unref(r);
    dbus_uint32_t size = LARGE;
    m = new_call(FIXTURE, OPATH, IFACE, "Blob");
    dbus_message_append_args(m, DBUS_TYPE_UINT32, &size, DBUS_TYPE_INVALID);
    r = dbus_connection_send_with_reply_and_block(c, m, 120000, &err);
    dbus_message_unref(m);
    if (!r) fail("Blob: %s: %s", err.name, err.message);
    const unsigned char *blob = NULL;
    if (!dbus_message_get_args(r, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &blob, &len, DBUS_TYPE_INVALID)) fail("Blob: bad reply");
    EQUAL_INT(len, LARGE, "32 MiB reply length");
    CHECK(memcmp(blob, data, LARGE) == 0, "32 MiB reply differs");
}

static void monitor(void) {
    DBusConnection *mon = connect_to(ADDRESS), *c = connect_to(ADDRESS);
    DBusMessage *m = new_call(DBUS_NAME, DBUS_OPATH, "org.freedesktop.DBus.Monitoring", "BecomeMonitor");
    DBusMessageIter it, arr;
    dbus_uint32_t flags = 0;
    dbus_message_iter_init_append(m, &it);
    dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &arr);
    dbus_message_iter_close_container(&it, &arr);
    dbus_message_iter_append_basic(&it, DBUS_TYPE_UINT32, &flags);
    dbus_message_unref(must_call(mon, m, "BecomeMonitor"));
    char t[16];
    const char *tp = t;
    token(t);
    m = new_call(FIXTURE, OPATH, IFACE, "Echo");
    dbus_message_append_args(m, DBUS_TYPE_STRING, &tp, DBUS_TYPE_INVALID);
    dbus_message_unref(must_call(c, m, "Echo"));
    int seen_call = 0, seen_reply = 0;
    double deadline = now_s() + 5;
    while (!(seen_call && seen_reply) && (m = next_message(mon, deadline))) {
        const char *s = NULL;
        if (dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &s, DBUS_TYPE_INVALID) && strcmp(s, t) == 0) {
            seen_call |= dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_METHOD_CALL;
            seen_reply |= dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_METHOD_RETURN;
        }
        dbus_message_unref(m);
    }
    CHECK(seen_call, "monitor did not see the call");
    CHECK(seen_reply, "monitor did not see the reply");
}

static void noreply(void) {
    DBusConnection *c = connect_to(ADDRESS);
    char rule[512], owner[256];
    snprintf(rule, sizeof rule, "type='signal',sender='" DBUS_NAME "',member='NameOwnerChanged',arg0='%s'", CALLEE);
    add_match(c, rule);
    get_name_owner(c, CALLEE, owner, sizeof owner);
    DBusError err;
    dbus_error_init(&err);
    CHECK(!call_msg(c, new_call(CALLEE, OPATH, IFACE, "Hang"), &err), "Hang() returned");
    EQUAL_STR(err.name, DBUS_NAME ".Error.NoReply", "error of the pending call");
    double deadline = now_s() + 5;
    DBusMessage *m;
    while ((m = next_message(c, deadline))) {
        if (is_signal(m, DBUS_NAME, "NameOwnerChanged")) {
            const char *n = NULL, *o = NULL, *nw = NULL;
            if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &n, DBUS_TYPE_STRING, &o, DBUS_TYPE_STRING, &nw, DBUS_TYPE_INVALID))
                fail("NameOwnerChanged: bad arguments");
            EQUAL_STR(n, CALLEE, "NameOwnerChanged name");
            EQUAL_STR(o, owner, "NameOwnerChanged old owner");
            EQUAL_STR(nw, "", "NameOwnerChanged new owner");
            return;
        }
        dbus_message_unref(m);
    }
    fail("no NameOwnerChanged");
}

int main(int argc, char **argv) {
    static const struct scenario list[] = {
        {"hello-unix", hello_unix}, {"hello-tcp", hello_tcp}, {"names", names}, {"call", call},
        {"signals", signals}, {"unicast", unicast}, {"fds", fds}, {"properties", properties},
        {"large", large}, {"monitor", monitor}, {"noreply", noreply}, {NULL, NULL},
    };
    if (argc < 2) fail("usage: %s SCENARIO", argv[0]);
    return run_scenario(list, argv[1]);
}
