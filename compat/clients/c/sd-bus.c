/* Matrix driver written directly against sd-bus (libsystemd). usage: c-sd-bus SCENARIO */
#include <errno.h>
#include <systemd/sd-bus.h>

#include "common.h"

/* Every message the bus delivers, kept by a filter: sd-bus's own match
 * slots would hide a signal the bus should not have sent. */
#define MAX_SEEN 256
struct inbox {
    sd_bus_message *msgs[MAX_SEEN];
    int n;
};

static int on_any(sd_bus_message *m, void *userdata, sd_bus_error *ret) {
    (void)ret;
    struct inbox *box = userdata;
    if (box->n < MAX_SEEN) box->msgs[box->n++] = sd_bus_message_ref(m);
    return 0;
}

static sd_bus *connect_with(const char *address, struct inbox *box, int monitor) {
    sd_bus *b = NULL;
    int r;
    if ((r = sd_bus_new(&b)) < 0) fail("sd_bus_new: %s", strerror(-r));
    if ((r = sd_bus_set_address(b, address)) < 0) fail("address %s: %s", address, strerror(-r));
    sd_bus_set_bus_client(b, 1);
    sd_bus_negotiate_fds(b, 1);
    if (monitor) sd_bus_set_monitor(b, 1);
    if ((r = sd_bus_start(b)) < 0) fail("connect %s: %s", address, strerror(-r));
    if (box && (r = sd_bus_add_filter(b, NULL, on_any, box)) < 0) fail("add_filter: %s", strerror(-r));
    return b;
}
static sd_bus *connect_to(struct inbox *box) { return connect_with(ADDRESS, box, 0); }

static const char *unique(sd_bus *b) {
    const char *u = NULL;
    int r = sd_bus_get_unique_name(b, &u);
    if (r < 0) fail("no unique name: %s", strerror(-r));
    return u;
}

/* Runs the bus until `done(box, arg)` or 5 s pass. */
static int pump(sd_bus *b, struct inbox *box, int (*done)(struct inbox *, const void *), const void *arg) {
    double deadline = now_s() + 5;
    while (!done(box, arg)) {
        /* Asking for the unhandled message matters to a monitor: without it
         * sd-bus would answer the calls it sees, and a bus may disconnect a
         * monitor that sends anything. */
        sd_bus_message *m = NULL;
        int r = sd_bus_process(b, &m);
        if (r < 0) fail("process: %s", strerror(-r));
        if (m) {
            int known = 0;
            for (int i = 0; i < box->n; i++) known |= box->msgs[i] == m;
            if (!known && box->n < MAX_SEEN) box->msgs[box->n++] = sd_bus_message_ref(m);
            sd_bus_message_unref(m);
        }
        if (r > 0) continue;
        double left = deadline - now_s();
        if (left <= 0) return 0;
        sd_bus_wait(b, (uint64_t)(left * 1e6));
    }
    return 1;
}

static int has_signal(struct inbox *box, const void *member_arg) {
    const char *const *im = member_arg; /* {interface, member, first arg or NULL} */
    for (int i = 0; i < box->n; i++) {
        sd_bus_message *m = box->msgs[i];
        if (!sd_bus_message_is_signal(m, im[0], im[1])) continue;
        if (!im[2]) return 1;
        const char *s = NULL;
        sd_bus_message_rewind(m, 1);
        if (sd_bus_message_read(m, "s", &s) > 0 && strcmp(s, im[2]) == 0) return 1;
    }
    return 0;
}

static sd_bus_message *must_call(sd_bus *b, const char *dest, const char *path, const char *iface, const char *member,
                                 const char *sig, ...) {
    sd_bus_message *m = NULL, *reply = NULL;
    sd_bus_error err = SD_BUS_ERROR_NULL;
    va_list ap;
    int r = sd_bus_message_new_method_call(b, &m, dest, path, iface, member);
    if (r < 0) fail("%s: %s", member, strerror(-r));
    va_start(ap, sig);
    if (sig && (r = sd_bus_message_appendv(m, sig, ap)) < 0) fail("%s append: %s", member, strerror(-r));
    va_end(ap);
    if ((r = sd_bus_call(b, m, 0, &err, &reply)) < 0) fail("%s: %s: %s", member, err.name, err.message);
    sd_bus_message_unref(m);
    return reply;
}

#define DRIVER(b, member, ...) must_call((b), DBUS_NAME, DBUS_OPATH, DBUS_NAME, (member), __VA_ARGS__)
#define FIX(b, member, ...) must_call((b), FIXTURE, OPATH, IFACE, (member), __VA_ARGS__)

static const char *read_s(sd_bus_message *m, const char *what) {
    const char *s = NULL;
    int r = sd_bus_message_read(m, "s", &s);
    if (r <= 0) fail("%s: bad reply (%s)", what, strerror(-r));
    return s;
}

static void hello(const char *address) {
    sd_bus *b = connect_with(address, NULL, 0);
    const char *me = unique(b);
    CHECK(me[0] == ':', "unique name %s", me);
    EQUAL_STR(read_s(DRIVER(b, "GetNameOwner", "s", me), "GetNameOwner"), me, "GetNameOwner(self)");
    sd_bus_message *r = DRIVER(b, "ListNames", NULL);
    char **names = NULL;
    if (sd_bus_message_read_strv(r, &names) < 0) fail("ListNames: bad reply");
    int found = 0;
    for (char **n = names; n && *n; n++) found |= strcmp(*n, DBUS_NAME) == 0;
    CHECK(found, "ListNames lacks the driver");
}
static void hello_unix(void) { hello(ADDRESS); }
static void hello_tcp(void) { hello(TCP_ADDRESS); }

static unsigned request(sd_bus *b, const char *name, unsigned flags) {
    uint32_t code = 0;
    if (sd_bus_message_read(DRIVER(b, "RequestName", "su", name, flags), "u", &code) <= 0) fail("RequestName: bad reply");
    return code;
}

static void names(void) {
    static struct inbox ba, bb;
    sd_bus *a = connect_to(&ba), *b = connect_to(&bb), *c = connect_to(NULL);
    char t[16], name[64];
    token(t);
    snprintf(name, sizeof name, "org.kdbusbridge.Compat.N%s", t);
    EQUAL_INT(request(a, name, 1 | 4), 1, "A RequestName");
    EQUAL_INT(request(b, name, 4), 3, "B RequestName DO_NOT_QUEUE");
    EQUAL_INT(request(b, name, 0), 2, "B RequestName queued");
    char **q = NULL;
    if (sd_bus_message_read_strv(DRIVER(a, "ListQueuedOwners", "s", name), &q) < 0 || !q || !q[0] || !q[1] || q[2])
        fail("ListQueuedOwners: want two owners");
    EQUAL_STR(q[0], unique(a), "ListQueuedOwners[0]");
    EQUAL_STR(q[1], unique(b), "ListQueuedOwners[1]");
    /* sd-bus's own call, whose flags differ from the wire's. */
    int r = sd_bus_request_name(c, name, SD_BUS_NAME_REPLACE_EXISTING);
    EQUAL_INT(r, 1, "C sd_bus_request_name REPLACE_EXISTING");
    EQUAL_STR(read_s(DRIVER(a, "GetNameOwner", "s", name), "GetNameOwner"), unique(c), "owner after replacement");
    EQUAL_INT(sd_bus_release_name(c, name), 0, "C sd_bus_release_name");
    EQUAL_STR(read_s(DRIVER(a, "GetNameOwner", "s", name), "GetNameOwner"), unique(b), "owner after release");
    const char *lost[] = {DBUS_NAME, "NameLost", name}, *acquired[] = {DBUS_NAME, "NameAcquired", name};
    CHECK(pump(a, &ba, has_signal, lost), "A got no NameLost");
    CHECK(pump(b, &bb, has_signal, acquired), "B got no NameAcquired");
}

static void call(void) {
    sd_bus *b = connect_to(NULL);
    char t[16];
    token(t);
    EQUAL_STR(read_s(FIX(b, "Echo", "s", t), "Echo"), t, "Echo");
    int32_t sum = 0;
    if (sd_bus_message_read(FIX(b, "Add", "ii", 40, 2), "i", &sum) <= 0) fail("Add: bad reply");
    EQUAL_INT(sum, 42, "Add");
    sd_bus_error err = SD_BUS_ERROR_NULL;
    CHECK(sd_bus_call_method(b, FIXTURE, OPATH, IFACE, "Fail", &err, NULL, "s", "boom") < 0, "Fail() returned");
    EQUAL_STR(err.name, IFACE ".Error.Failed", "error name");
    EQUAL_STR(err.message, "boom", "error message");
    sd_bus_error_free(&err);
    CHECK(sd_bus_call_method(b, DBUS_NAME, DBUS_OPATH, DBUS_NAME, "GetNameOwner", &err, NULL, "s", "org.kdbusbridge.Nobody") < 0,
          "GetNameOwner(nobody) returned");
    EQUAL_STR(err.name, DBUS_NAME ".Error.NameHasNoOwner", "GetNameOwner(nobody)");
}

static int ignore_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret) {
    (void)m; (void)userdata; (void)ret;
    return 0;
}

static void add_match(sd_bus *b, const char *rule) {
    int r = sd_bus_add_match(b, NULL, rule, ignore_signal, NULL);
    if (r < 0) fail("AddMatch %s: %s", rule, strerror(-r));
}

static void signals(void) {
    static struct inbox box;
    sd_bus *b = connect_to(&box);
    add_match(b, MATCH_RULE);
    add_match(b, END_RULE);
    FIX(b, "EmitMatches", NULL);
    const char *end[] = {IFACE, "End", NULL};
    CHECK(pump(b, &box, has_signal, end), "no End signal");
    const char *want[] = {TICK_1, TICK_2};
    int n = 0;
    for (int i = 0; i < box.n; i++) {
        sd_bus_message *m = box.msgs[i];
        if (!sd_bus_message_is_signal(m, IFACE, "Tick") && !sd_bus_message_is_signal(m, IFACE, "Tock")) continue;
        CHECK(n < 2, "matched signals: unexpected extra %s", sd_bus_message_get_path(m));
        EQUAL_STR(sd_bus_message_get_path(m), want[n], "matched signal path");
        n++;
    }
    EQUAL_INT(n, 2, "matched signals");
}

static void unicast(void) {
    static struct inbox mine, theirs;
    sd_bus *b = connect_to(&mine), *observer = connect_to(&theirs);
    add_match(observer, "type='signal',interface='" IFACE "'");
    char t[16];
    token(t);
    FIX(b, "EmitTo", "ss", unique(b), t);
    const char *uni[] = {IFACE, "Unicast", t}, *end[] = {IFACE, "End", NULL}, *leak[] = {IFACE, "Unicast", NULL};
    CHECK(pump(b, &mine, has_signal, uni), "unicast signal missing");
    CHECK(pump(observer, &theirs, has_signal, end), "observer saw no End");
    CHECK(!has_signal(&theirs, leak), "a unicast signal reached a non-recipient");
}

static void fds(void) {
    sd_bus *b = connect_to(NULL);
    CHECK(sd_bus_can_send(b, 'h') > 0, "fd passing not negotiated");
    char t[16], buf[64];
    token(t);
    int p[2];
    if (pipe(p) != 0) fail("pipe");
    CHECK(write(p[1], t, strlen(t)) == (ssize_t)strlen(t), "write");
    close(p[1]);
    EQUAL_STR(read_s(FIX(b, "ReadFd", "h", p[0]), "ReadFd"), t, "ReadFd");
    close(p[0]);
    int fd = -1;
    if (sd_bus_message_read(FIX(b, "MakeFd", "s", t), "h", &fd) <= 0) fail("MakeFd: no fd in the reply");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    EQUAL_STR(buf, t, "MakeFd content");
}

static void properties(void) {
    sd_bus *b = connect_to(NULL);
    sd_bus_error err = SD_BUS_ERROR_NULL;
    char *name = NULL;
    int r = sd_bus_get_property_string(b, FIXTURE, OPATH, IFACE, "Name", &err, &name);
    if (r < 0) fail("Get Name: %s", err.message);
    EQUAL_STR(name, "compat-fixture", "Get Name");
    if (sd_bus_set_property(b, FIXTURE, OPATH, IFACE, "Count", &err, "i", 42) < 0) fail("Set Count: %s", err.message);
    int32_t count = 0;
    if (sd_bus_get_property_trivial(b, FIXTURE, OPATH, IFACE, "Count", &err, 'i', &count) < 0) fail("Get Count: %s", err.message);
    EQUAL_INT(count, 42, "Get Count after Set");
    sd_bus_message *m = must_call(b, FIXTURE, OPATH, "org.freedesktop.DBus.Properties", "GetAll", "s", IFACE);
    int found = 0;
    if (sd_bus_message_enter_container(m, 'a', "{sv}") <= 0) fail("GetAll: not a dict");
    while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
        const char *key = NULL;
        sd_bus_message_read(m, "s", &key);
        if (strcmp(key, "Count") == 0) {
            count = 0;
            if (sd_bus_message_read(m, "v", "i", &count) <= 0) fail("GetAll Count: not an int32");
            EQUAL_INT(count, 42, "GetAll Count");
            found = 1;
        } else {
            sd_bus_message_skip(m, "v");
        }
        sd_bus_message_exit_container(m);
    }
    CHECK(found, "GetAll lacks Count");
    const char *xml = read_s(must_call(b, FIXTURE, OPATH, "org.freedesktop.DBus.Introspectable", "Introspect", NULL), "Introspect");
    CHECK(strstr(xml, "<interface name=\"" IFACE "\">") && strstr(xml, "name=\"Echo\""), "Introspect lacks the interface");
}

static void large(void) {
    sd_bus *b = connect_to(NULL);
    unsigned char *data = pattern(LARGE);
    char want[65];
    sha256_hex(data, LARGE, want);
    sd_bus_message *m = NULL, *reply = NULL;
    sd_bus_error err = SD_BUS_ERROR_NULL;
    sd_bus_message_new_method_call(b, &m, FIXTURE, OPATH, IFACE, "Digest");
    int r = sd_bus_message_append_array(m, 'y', data, LARGE);
    if (r < 0) fail("append 32 MiB: %s", strerror(-r));
    if ((r = sd_bus_call(b, m, 120 * 1000000ULL, &err, &reply)) < 0) fail("Digest: %s: %s", err.name, err.message ? err.message : strerror(-r));
    uint32_t n = 0;
    const char *digest = NULL;
    if (sd_bus_message_read(reply, "us", &n, &digest) <= 0) fail("Digest: bad reply");
    EQUAL_INT(n, LARGE, "Digest length");
    EQUAL_STR(digest, want, "Digest of 32 MiB");
    sd_bus_message_new_method_call(b, &m, FIXTURE, OPATH, IFACE, "Blob");
    sd_bus_message_append(m, "u", (uint32_t)LARGE);
    if ((r = sd_bus_call(b, m, 120 * 1000000ULL, &err, &reply)) < 0) fail("Blob: %s: %s", err.name, err.message ? err.message : strerror(-r));
    const void *blob = NULL;
    size_t size = 0;
    if (sd_bus_message_read_array(reply, 'y', &blob, &size) < 0) fail("Blob: bad reply");
    EQUAL_INT(size, LARGE, "32 MiB reply length");
    CHECK(memcmp(blob, data, LARGE) == 0, "32 MiB reply differs");
}

static int saw_echo(struct inbox *box, const void *tok) {
    int call_seen = 0, reply_seen = 0;
    for (int i = 0; i < box->n; i++) {
        sd_bus_message *m = box->msgs[i];
        const char *s = NULL;
        uint8_t type = 0;
        sd_bus_message_get_type(m, &type);
        sd_bus_message_rewind(m, 1);
        if (sd_bus_message_peek_type(m, NULL, NULL) > 0 && sd_bus_message_read_basic(m, 's', &s) > 0 && strcmp(s, tok) == 0) {
            call_seen |= type == SD_BUS_MESSAGE_METHOD_CALL;
            reply_seen |= type == SD_BUS_MESSAGE_METHOD_RETURN;
        }
    }
    return call_seen && reply_seen;
}

static void monitor(void) {
    static struct inbox box;
    sd_bus *mon = connect_with(ADDRESS, &box, 1), *b = connect_to(NULL);
    sd_bus_message *m = NULL;
    sd_bus_message_new_method_call(mon, &m, DBUS_NAME, DBUS_OPATH, "org.freedesktop.DBus.Monitoring", "BecomeMonitor");
    sd_bus_message_append_strv(m, NULL);
    sd_bus_message_append(m, "u", 0);
    sd_bus_error err = SD_BUS_ERROR_NULL;
    if (sd_bus_call(mon, m, 0, &err, NULL) < 0) fail("BecomeMonitor: %s", err.message);
    char t[16];
    token(t);
    EQUAL_STR(read_s(FIX(b, "Echo", "s", t), "Echo"), t, "Echo");
    CHECK(pump(mon, &box, saw_echo, t), "monitor did not see the call and its reply");
}

static void noreply(void) {
    static struct inbox box;
    sd_bus *b = connect_to(&box);
    char rule[512], owner[256];
    snprintf(rule, sizeof rule, "type='signal',sender='" DBUS_NAME "',member='NameOwnerChanged',arg0='%s'", CALLEE);
    add_match(b, rule);
    snprintf(owner, sizeof owner, "%s", read_s(DRIVER(b, "GetNameOwner", "s", CALLEE), "GetNameOwner"));
    sd_bus_error err = SD_BUS_ERROR_NULL;
    CHECK(sd_bus_call_method(b, CALLEE, OPATH, IFACE, "Hang", &err, NULL, NULL) < 0, "Hang() returned");
    EQUAL_STR(err.name, DBUS_NAME ".Error.NoReply", "error of the pending call");
    const char *noc[] = {DBUS_NAME, "NameOwnerChanged", CALLEE};
    CHECK(pump(b, &box, has_signal, noc), "no NameOwnerChanged");
    for (int i = 0; i < box.n; i++) {
        sd_bus_message *m = box.msgs[i];
        if (!sd_bus_message_is_signal(m, DBUS_NAME, "NameOwnerChanged")) continue;
        const char *n = NULL, *o = NULL, *nw = NULL;
        sd_bus_message_rewind(m, 1);
        if (sd_bus_message_read(m, "sss", &n, &o, &nw) <= 0) fail("NameOwnerChanged: bad arguments");
        EQUAL_STR(o, owner, "NameOwnerChanged old owner");
        EQUAL_STR(nw, "", "NameOwnerChanged new owner");
        return;
    }
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
