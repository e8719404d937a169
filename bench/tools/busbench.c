/*
 * busbench: a raw D-Bus protocol load client for the benchmark runner.
 *
 * It speaks the wire protocol directly (SASL EXTERNAL, Hello, little-endian
 * messages) so that the client side costs the same on every bus and stays
 * far cheaper than the bus under test. Every measuring mode reads the bus
 * process's utime+stime from /proc/PID/stat exactly at the edges of its
 * measured window, so setup work (connecting, AddMatch) is never billed to
 * the operations. Each mode prints one JSON object on stdout.
 *
 * Modes:
 *   echo    ADDR NAME                          reply (empty) to every call
 *   calls   ADDR DEST INFLIGHT SECS BYTES PID  method calls, INFLIGHT pending
 *   unicast ADDR SECS WINDOW BYTES PID         one-way, counted at receiver
 *   fanout  ADDR NSUBS SECS WINDOW NOISE PID   signal to NSUBS match rules
 *   fanout-spread ADDR NSUBS SECS WINDOW NOISE NCONNS PID
 *                                              the NOISE rules over NCONNS clients
 *   connect ADDR SECS PID                      connect+SASL+Hello+close loop
 *   hold    ADDR NCONNS NRULES                 idle clients/rules until stdin EOF
 *   storm   ADDR NCLIENTS NCALLS DEST PID      RequestName+AddMatch+calls at once
 *   pause   ADDR DEST SECS PID                 serial calls; SIGUSR2 to PID (an in-place
 *                                              upgrade) at SECS/3; the longest gap between replies
 *   pause   ADDR DEST SECS 'SHELL COMMAND'     the same, running the command (a successor that
 *                                              takes the bus over) at SECS/3 instead
 *   names   ADDR NNAMES OP SECS PID            one client owns NNAMES well-known names, then OP:
 *                                              request (RequestName+ReleaseName of one more name),
 *                                              getowner (GetNameOwner of an owned name), list
 *                                              (ListNames), each 32 in flight; or signal (to a
 *                                              subscriber whose rule names the sender by an owned
 *                                              well-known name, 128 outstanding)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { T_CALL = 1, T_RETURN = 2, T_ERROR = 3, T_SIGNAL = 4 };
enum { F_NO_REPLY = 0x1 };

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("busbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bus CPU in seconds (all threads: /proc/PID/stat aggregates the group). */
static double bus_cpu(long pid) {
    if (pid <= 0) return 0.0;
    char path[64], line[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0.0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')');
    if (!p) return 0.0;
    unsigned long long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0.0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---------- growable byte buffer ---------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) die("out of memory");
    b->cap = cap;
}
static void put(buf_t *b, const void *d, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void put_u8(buf_t *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(buf_t *b, uint32_t v) { put(b, &v, 4); }
static void pad_to(buf_t *b, size_t base, size_t a) {
    while ((b->len - base) % a) put_u8(b, 0);
}

/* ---------- message marshalling ---------- */

typedef struct {
    int type, flags;
    uint32_t serial, reply_serial;
    const char *path, *iface, *member, *dest, *errname, *sig;
    const void *body;
    uint32_t body_len;
} out_msg_t;

static void field_str(buf_t *b, size_t base, uint8_t code, char sig, const char *s) {
    if (!s) return;
    pad_to(b, base, 8);
    uint8_t h[4] = {code, 1, (uint8_t)sig, 0};
    put(b, h, 4);
    uint32_t n = (uint32_t)strlen(s);
    if (sig == 'g') {
        put_u8(b, (uint8_t)n);
    } else {
        put_u32(b, n);
    }
    put(b, s, n + 1);
}

static void marshal(buf_t *b, const out_msg_t *m) {
    size_t base = b->len;
    uint8_t h[4] = {'l', (uint8_t)m->type, (uint8_t)m->flags, 1};
    put(b, h, 4);
    put_u32(b, m->body_len);
    put_u32(b, m->serial);
    put_u32(b, 0); /* header field array length, patched below */
    size_t fstart = b->len;
    field_str(b, base, 1, 'o', m->path);
    field_str(b, base, 2, 's', m->iface);
    field_str(b, base, 3, 's', m->member);
    field_str(b, base, 4, 's', m->errname);
    if (m->reply_serial) {
        pad_to(b, base, 8);
        uint8_t f[4] = {5, 1, 'u', 0};
        put(b, f, 4);
        put_u32(b, m->reply_serial);
    }
    field_str(b, base, 6, 's', m->dest);
    if (m->sig && *m->sig) field_str(b, base, 8, 'g', m->sig);
    uint32_t flen = (uint32_t)(b->len - fstart);
    memcpy(b->p + base + 12, &flen, 4);
    pad_to(b, base, 8);
    if (m->body_len) put(b, m->body, m->body_len);
}

/* Body holding one string (signature "s"). */
static void body_str(buf_t *b, const char *s) {
    b->len = 0;
    uint32_t n = (uint32_t)strlen(s);
    put_u32(b, n);
    put(b, s, n + 1);
}

/* ---------- parsed incoming message (pointers into the input buffer) ---------- */

typedef struct {
    int type, flags;
    uint32_t serial, reply_serial;
    const char *sender, *member, *sig, *errname;
    const uint8_t *body;
    uint32_t body_len;
} in_msg_t;

static size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

/* Returns the frame length if a whole message is available, 0 if not. */
static size_t frame_len(const uint8_t *p, size_t avail) {
    if (avail < 16) return 0;
    if (p[0] != 'l') die("big-endian message from bus not supported");
    uint32_t blen, flen;
    memcpy(&blen, p + 4, 4);
    memcpy(&flen, p + 12, 4);
    size_t total = align_up(16 + (size_t)flen, 8) + blen;
    return avail >= total ? total : 0;
}

static void parse(const uint8_t *p, in_msg_t *m) {
    memset(m, 0, sizeof *m);
    m->type = p[1];
    m->flags = p[2];
    uint32_t flen;
    memcpy(&m->body_len, p + 4, 4);
    memcpy(&m->serial, p + 8, 4);
    memcpy(&flen, p + 12, 4);
    size_t off = 16, end = 16 + flen;
    while (off < end) {
        off = align_up(off, 8);
        if (off >= end) break;
        uint8_t code = p[off];
        uint8_t slen = p[off + 1];
        char sig = (char)p[off + 2];
        off += 2 + slen + 1;
        if (sig == 's' || sig == 'o') {
            off = align_up(off, 4);
            uint32_t n;
            memcpy(&n, p + off, 4);
            const char *s = (const char *)p + off + 4;
            if (code == 7) m->sender = s;
            else if (code == 3) m->member = s;
            else if (code == 4) m->errname = s;
            off += 4 + n + 1;
        } else if (sig == 'g') {
            uint8_t n = p[off];
            if (code == 8) m->sig = (const char *)p + off + 1;
            off += 1 + n + 1;
        } else if (sig == 'u') {
            off = align_up(off, 4);
            if (code == 5) memcpy(&m->reply_serial, p + off, 4);
            off += 4;
        } else {
            die("unexpected header field type '%c'", sig);
        }
    }
    m->body = p + align_up(16 + flen, 8);
}

/* ---------- connections ---------- */

typedef struct conn {
    int fd;
    buf_t in;
    size_t in_off;
    buf_t out;
    size_t out_off;
    uint32_t serial;
    char unique[64];
    /* per-mode state */
    int step;
    uint32_t waiting;
    long count;
} conn_t;

static char g_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char g_auth[128];

static void parse_address(const char *addr) {
    const char *p = strstr(addr, "unix:path=");
    if (!p) die("only unix:path= addresses are supported: %s", addr);
    p += strlen("unix:path=");
    size_t n = strcspn(p, ",;");
    if (n >= sizeof g_path) die("socket path too long");
    memcpy(g_path, p, n);
    g_path[n] = 0;
    char hex[32], uid[16];
    snprintf(uid, sizeof uid, "%u", (unsigned)getuid());
    for (size_t i = 0; uid[i]; i++) sprintf(hex + 2 * i, "%02x", (unsigned char)uid[i]);
    snprintf(g_auth, sizeof g_auth, "AUTH EXTERNAL %s\r\n", hex);
}

static int sock_connect(int nonblock) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, g_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        die("connect %s: %s", g_path, strerror(errno));
    return fd;
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static uint32_t send_msg(conn_t *c, out_msg_t m) {
    m.serial = ++c->serial;
    marshal(&c->out, &m);
    return m.serial;
}

static uint32_t call_driver(conn_t *c, const char *member, const char *sig, const buf_t *body) {
    out_msg_t m = {.type = T_CALL, .path = "/org/freedesktop/DBus", .iface = "org.freedesktop.DBus",
                   .member = member, .dest = "org.freedesktop.DBus", .sig = sig,
                   .body = body ? body->p : NULL, .body_len = body ? (uint32_t)body->len : 0};
    return send_msg(c, m);
}

static uint32_t send_hello(conn_t *c) { return call_driver(c, "Hello", NULL, NULL); }

static uint32_t send_addmatch(conn_t *c, const char *rule) {
    buf_t b = {0};
    body_str(&b, rule);
    uint32_t s = call_driver(c, "AddMatch", "s", &b);
    free(b.p);
    return s;
}

static uint32_t send_request_name(conn_t *c, const char *name) {
    buf_t b = {0};
    body_str(&b, name);
    pad_to(&b, 0, 4);
    put_u32(&b, 4); /* DBUS_NAME_FLAG_DO_NOT_QUEUE */
    uint32_t s = call_driver(c, "RequestName", "su", &b);
    free(b.p);
    return s;
}

/* Writes what it can; returns -1 when the peer is gone. */
static int flush_some(conn_t *c) {
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            if (errno == EINTR) continue;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out.len = c->out_off = 0;
    return 0;
}

/* Reads what is available; returns -1 on EOF/error, else bytes read. */
static long read_some(conn_t *c) {
    if (c->in_off > 0 && c->in_off == c->in.len) c->in.len = c->in_off = 0;
    if (c->in_off > (1u << 20) || (c->in_off > 0 && c->in.cap - c->in.len < 65536)) {
        memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    buf_reserve(&c->in, 65536);
    ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
    if (n == 0) return -1;
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    c->in.len += (size_t)n;
    return n;
}

/* Next complete message from the input buffer, or 0. */
static int next_msg(conn_t *c, in_msg_t *m) {
    size_t n = frame_len(c->in.p + c->in_off, c->in.len - c->in_off);
    if (!n) return 0;
    parse(c->in.p + c->in_off, m);
    c->in_off += n;
    return 1;
}

static void flush_all_blocking(conn_t *c) {
    while (c->out_off < c->out.len) {
        if (flush_some(c) < 0) die("bus closed the connection while writing");
        if (c->out_off < c->out.len) {
            struct pollfd p = {c->fd, POLLOUT, 0};
            poll(&p, 1, 1000);
        }
    }
}

/* Blocks until the reply to `serial` arrives; other messages are dropped. */
static void wait_reply(conn_t *c, uint32_t serial, in_msg_t *out) {
    flush_all_blocking(c);
    for (;;) {
        in_msg_t m;
        while (next_msg(c, &m)) {
            if ((m.type == T_RETURN || m.type == T_ERROR) && m.reply_serial == serial) {
                if (m.type == T_ERROR) die("call failed: %s", m.errname ? m.errname : "?");
                if (out) *out = m;
                return;
            }
        }
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) die("timeout waiting for reply %u", serial);
        if (read_some(c) < 0) die("bus closed the connection");
    }
}

/* Reads the SASL reply line; anything after it stays in c->in. */
static void read_sasl_ok(conn_t *c) {
    for (;;) {
        uint8_t *s = c->in.p + c->in_off;
        size_t avail = c->in.len - c->in_off;
        uint8_t *eol = avail ? memmem(s, avail, "\r\n", 2) : NULL;
        if (eol) {
            if (avail < 3 || memcmp(s, "OK ", 3) != 0) die("SASL rejected: %.*s", (int)(eol - s), s);
            c->in_off += (size_t)(eol - s) + 2;
            return;
        }
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) die("timeout in SASL");
        if (read_some(c) < 0) die("bus closed the connection during SASL");
    }
}

static void conn_reset(conn_t *c) {
    c->in.len = c->in_off = c->out.len = c->out_off = 0;
    c->serial = 0;
    c->unique[0] = 0;
    c->step = 0;
    c->waiting = 0;
    c->count = 0;
}

/*
 * Connect, authenticate and register. Pipelined sends AUTH, BEGIN and Hello
 * in one write (as sd-bus does); otherwise it waits for OK before BEGIN (as
 * libdbus does).
 */
static void conn_open(conn_t *c, int pipelined) {
    conn_reset(c);
    c->fd = sock_connect(0);
    put_u8(&c->out, 0);
    put(&c->out, g_auth, strlen(g_auth));
    if (!pipelined) {
        flush_all_blocking(c);
        read_sasl_ok(c);
    }
    put(&c->out, "BEGIN\r\n", 7);
    uint32_t s = send_hello(c);
    if (pipelined) {
        flush_all_blocking(c);
        read_sasl_ok(c);
    }
    in_msg_t r;
    wait_reply(c, s, &r);
    uint32_t n;
    memcpy(&n, r.body, 4);
    if (n >= sizeof c->unique) die("unique name too long");
    memcpy(c->unique, r.body + 4, n);
    c->unique[n] = 0;
    set_nonblock(c->fd);
}

static void conn_close(conn_t *c) {
    close(c->fd);
    c->fd = -1;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* One poll round over conns; readable ones get read. Returns -1 if one died. */
static int pump(conn_t **cs, int n, int timeout_ms) {
    struct pollfd pf[n];
    for (int i = 0; i < n; i++) {
        if (cs[i]->out_off < cs[i]->out.len && flush_some(cs[i]) < 0) return -1;
        pf[i].fd = cs[i]->fd;
        pf[i].events = POLLIN | (cs[i]->out_off < cs[i]->out.len ? POLLOUT : 0);
        pf[i].revents = 0;
    }
    int r = poll(pf, (nfds_t)n, timeout_ms);
    if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        if (pf[i].revents & POLLOUT && flush_some(cs[i]) < 0) return -1;
        if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
            if (read_some(cs[i]) < 0) return -1;
    }
    return 0;
}

/* ---------- modes ---------- */

static int mode_echo(char **a) {
    conn_t c = {0};
    conn_open(&c, 0);
    uint32_t s = send_request_name(&c, a[1]);
    set_nonblock(c.fd);
    int fl = fcntl(c.fd, F_GETFL);
    fcntl(c.fd, F_SETFL, fl & ~O_NONBLOCK);
    wait_reply(&c, s, NULL);
    fcntl(c.fd, F_SETFL, fl | O_NONBLOCK);
    printf("{\"ready\":true,\"unique\":\"%s\"}\n", c.unique);
    fflush(stdout);
    for (;;) {
        struct pollfd pf[2] = {{c.fd, POLLIN | (c.out_off < c.out.len ? POLLOUT : 0), 0}, {0, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR) die("poll");
        if (pf[1].revents) {
            char tmp[64];
            if (read(0, tmp, sizeof tmp) <= 0) return 0; /* runner is done with us */
        }
        if (pf[0].revents & POLLOUT && flush_some(&c) < 0) return 0;
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (read_some(&c) < 0) return 0;
            in_msg_t m;
            while (next_msg(&c, &m)) {
                if (m.type != T_CALL || (m.flags & F_NO_REPLY) || !m.sender) continue;
                out_msg_t r = {.type = T_RETURN, .reply_serial = m.serial, .dest = m.sender};
                send_msg(&c, r);
            }
            if (flush_some(&c) < 0) return 0;
        }
    }
}

static void print_result(const char *extra, long ops, double secs, double cpu) {
    printf("{\"ops\":%ld,\"secs\":%.6f,\"bus_cpu_s\":%.4f%s%s}\n", ops, secs, cpu, extra ? "," : "",
           extra ? extra : "");
    fflush(stdout);
}

static int mode_calls(char **a) {
    const char *dest = a[1];
    int inflight = atoi(a[2]);
    double secs = atof(a[3]);
    size_t bytes = (size_t)atol(a[4]);
    long pid = atol(a[5]);
    conn_t c = {0};
    conn_open(&c, 0);
    buf_t body = {0};
    const char *sig = NULL;
    if (bytes > 0) {
        put_u32(&body, (uint32_t)bytes);
        buf_reserve(&body, bytes);
        memset(body.p + body.len, 'x', bytes);
        body.len += bytes;
        sig = "ay";
    }
    out_msg_t call = {.type = T_CALL, .path = "/org/bench/Echo", .iface = "org.bench.Echo", .member = "Ping",
                      .dest = dest, .sig = sig, .body = body.p, .body_len = (uint32_t)body.len};
    conn_t *cs[1] = {&c};
    int pending = 0;
    long done = 0, base_done = 0;
    double warm = secs * 0.15 < 0.1 ? 0.1 : secs * 0.15;
    double t0 = now(), tstart = 0, tend = 0, cpu0 = 0;
    int measuring = 0;
    for (;;) {
        while (pending < inflight) {
            send_msg(&c, call);
            pending++;
        }
        if (pump(cs, 1, 1000) < 0) die("bus closed the connection");
        in_msg_t m;
        while (next_msg(&c, &m)) {
            if (m.type == T_ERROR) die("call failed: %s", m.errname ? m.errname : "?");
            if (m.type == T_RETURN) {
                pending--;
                done++;
            }
        }
        double t = now();
        if (!measuring && t - t0 >= warm) {
            measuring = 1;
            tstart = t;
            base_done = done;
            cpu0 = bus_cpu(pid);
        } else if (measuring && t - tstart >= secs) {
            tend = t;
            break;
        }
    }
    double cpu = bus_cpu(pid) - cpu0;
    long ops = done - base_done;
    double el = tend - tstart;
    char extra[128];
    snprintf(extra, sizeof extra, "\"rtt_us\":%.2f,\"payload_bytes\":%zu", el / (double)ops * inflight * 1e6,
             bytes);
    print_result(extra, ops, el, cpu);
    return 0;
}

static int mode_unicast(char **a) {
    double secs = atof(a[1]);
    int window = atoi(a[2]);
    size_t bytes = (size_t)atol(a[3]);
    long pid = atol(a[4]);
    conn_t tx = {0}, rx = {0};
    conn_open(&rx, 0);
    conn_open(&tx, 0);
    buf_t body = {0};
    char *payload = malloc(bytes + 1);
    memset(payload, 'u', bytes);
    payload[bytes] = 0;
    body_str(&body, payload);
    free(payload);
    out_msg_t msg = {.type = T_CALL, .flags = F_NO_REPLY, .path = "/org/bench/Sink", .iface = "org.bench.Sink",
                     .member = "Tick", .dest = rx.unique, .sig = "s", .body = body.p,
                     .body_len = (uint32_t)body.len};
    conn_t *cs[2] = {&tx, &rx};
    long sent = 0, got = 0, base = 0;
    double warm = secs * 0.15 < 0.1 ? 0.1 : secs * 0.15;
    double t0 = now(), tstart = 0, tend = 0, cpu0 = 0;
    int measuring = 0;
    for (;;) {
        while (sent - got < window) {
            send_msg(&tx, msg);
            sent++;
        }
        if (pump(cs, 2, 1000) < 0) die("bus closed a connection");
        in_msg_t m;
        while (next_msg(&rx, &m))
            if (m.type == T_CALL && m.member && strcmp(m.member, "Tick") == 0) got++;
        while (next_msg(&tx, &m))
            if (m.type == T_ERROR) die("send failed: %s", m.errname ? m.errname : "?");
        double t = now();
        if (!measuring && t - t0 >= warm) {
            measuring = 1;
            tstart = t;
            base = got;
            cpu0 = bus_cpu(pid);
        } else if (measuring && t - tstart >= secs) {
            tend = t;
            break;
        }
    }
    double cpu = bus_cpu(pid) - cpu0;
    char extra[64];
    snprintf(extra, sizeof extra, "\"payload_bytes\":%zu", bytes);
    print_result(extra, got - base, tend - tstart, cpu);
    return 0;
}

/* Installs `n` rules on `c` (pipelined), waits for all replies. */
static void add_rules(conn_t *c, int n, const char *(*rule)(int, char *, size_t), int first) {
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
    uint32_t last = 0;
    char r[256];
    for (int i = 0; i < n; i++) {
        last = send_addmatch(c, rule(first + i, r, sizeof r));
        if (c->out.len > (1u << 18)) {
            /* Keep the bus's reply queue from growing unboundedly. */
            wait_reply(c, last, NULL);
        }
    }
    if (last) wait_reply(c, last, NULL);
    fcntl(c->fd, F_SETFL, fl);
}

static const char *fanout_rule(int i, char *r, size_t n) {
    (void)i;
    snprintf(r, n, "type='signal',interface='org.bench.Fanout',member='Tick'");
    return r;
}

/* Rules that look like the subscribers' but differ in one key, cycling keys. */
static const char *noise_rule(int i, char *r, size_t n) {
    switch (i % 4) {
    case 0: snprintf(r, n, "type='signal',interface='org.bench.Fanout',member='Other%d'", i); break;
    case 1: snprintf(r, n, "type='signal',interface='org.bench.Other%d',member='Tick'", i); break;
    case 2: snprintf(r, n, "type='signal',interface='org.bench.Fanout',member='Tick',path='/org/bench/N%d'", i); break;
    default: snprintf(r, n, "type='signal',interface='org.bench.Fanout',member='Tick',arg0='miss%d'", i); break;
    }
    return r;
}

/* noise_conns: how many clients hold the noise rules; 0 = 1,000 rules each. */
static int fanout_run(char **a, int noise_conns) {
    int nsubs = atoi(a[1]);
    double secs = atof(a[2]);
    int window = atoi(a[3]);
    int noise = atoi(a[4]);
    long pid = atol(a[5]);
    raise_nofile();
    int nnoise = noise_conns > 0 ? noise_conns : (noise + 999) / 1000;
    int per_noise = nnoise > 0 ? (noise + nnoise - 1) / nnoise : 0;
    int total = 1 + nsubs + nnoise;
    conn_t *conns = calloc((size_t)total, sizeof *conns);
    conn_t **cs = calloc((size_t)total, sizeof *cs);
    for (int i = 0; i < total; i++) {
        cs[i] = &conns[i];
        conn_open(cs[i], 0);
    }
    conn_t *em = cs[0];
    for (int i = 1; i <= nsubs; i++) add_rules(cs[i], 1, fanout_rule, 0);
    for (int k = 0; k < nnoise; k++) {
        int n = noise - k * per_noise < per_noise ? noise - k * per_noise : per_noise;
        if (n > 0) add_rules(cs[1 + nsubs + k], n, noise_rule, k * per_noise);
    }
    buf_t body = {0};
    body_str(&body, "tick");
    out_msg_t sig = {.type = T_SIGNAL, .path = "/org/bench/Fanout", .iface = "org.bench.Fanout",
                     .member = "Tick", .sig = "s", .body = body.p, .body_len = (uint32_t)body.len};
    long emitted = 0, base = 0;
    double warm = secs * 0.15 < 0.1 ? 0.1 : secs * 0.15;
    double t0 = now(), tstart = 0, tend = 0, cpu0 = 0;
    int measuring = 0;
    long stray = 0;
    for (;;) {
        long minrx = emitted;
        for (int i = 1; i <= nsubs; i++)
            if (cs[i]->count < minrx) minrx = cs[i]->count;
        while (emitted - minrx < window) {
            send_msg(em, sig);
            emitted++;
        }
        if (pump(cs, total, 1000) < 0) die("bus closed a connection");
        in_msg_t m;
        for (int i = 0; i < total; i++)
            while (next_msg(cs[i], &m)) {
                if (m.type == T_SIGNAL && m.member && strcmp(m.member, "Tick") == 0) {
                    if (i >= 1 && i <= nsubs) cs[i]->count++;
                    else stray++;
                }
            }
        double t = now();
        long sum = 0;
        for (int i = 1; i <= nsubs; i++) sum += cs[i]->count;
        if (!measuring && t - t0 >= warm) {
            measuring = 1;
            tstart = t;
            base = sum;
            cpu0 = bus_cpu(pid);
        } else if (measuring && t - tstart >= secs) {
            tend = t;
            base = sum - base;
            break;
        }
    }
    double cpu = bus_cpu(pid) - cpu0;
    char extra[128];
    snprintf(extra, sizeof extra, "\"deliveries\":%ld,\"subscribers\":%d,\"noise_rules\":%d,\"stray\":%ld", base,
             nsubs, noise, stray);
    /* ops = signals fully fanned out; CPU per op is reported per delivery by the runner */
    print_result(extra, base / nsubs, tend - tstart, cpu);
    return 0;
}

static int mode_fanout(char **a) { return fanout_run(a, 0); }

static int mode_fanout_spread(char **a) {
    char *b[] = {a[0], a[1], a[2], a[3], a[4], a[6]};
    return fanout_run(b, atoi(a[5]));
}

static int mode_connect(char **a) {
    double secs = atof(a[1]);
    long pid = atol(a[2]);
    conn_t c = {0};
    double warm = 0.1;
    double t0 = now(), tstart = 0, tend, cpu0 = 0;
    long n = 0, base = 0;
    int measuring = 0;
    for (;;) {
        conn_open(&c, 1);
        conn_close(&c);
        n++;
        double t = now();
        if (!measuring && t - t0 >= warm) {
            measuring = 1;
            tstart = t;
            base = n;
            cpu0 = bus_cpu(pid);
        } else if (measuring && t - tstart >= secs) {
            tend = t;
            break;
        }
    }
    print_result(NULL, n - base, tend - tstart, bus_cpu(pid) - cpu0);
    return 0;
}

static const char *hold_rule(int i, char *r, size_t n) {
    snprintf(r, n, "type='signal',interface='org.bench.Hold',member='M%d'", i);
    return r;
}

static int mode_hold(char **a) {
    int nconns = atoi(a[1]);
    int nrules = atoi(a[2]);
    raise_nofile();
    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    double t0 = now();
    for (int i = 0; i < nconns; i++) conn_open(&conns[i], 0);
    double t1 = now();
    int per = nconns ? (nrules + nconns - 1) / nconns : 0;
    for (int i = 0, done = 0; i < nconns && done < nrules; i++) {
        int n = nrules - done < per ? nrules - done : per;
        add_rules(&conns[i], n, hold_rule, done);
        done += n;
    }
    double t2 = now();
    printf("{\"ready\":true,\"connect_s\":%.4f,\"addmatch_s\":%.4f}\n", t1 - t0, t2 - t1);
    fflush(stdout);
    char tmp[64];
    while (read(0, tmp, sizeof tmp) > 0) {
    }
    return 0;
}

/* The pause a handover causes: the longest time no reply arrives in a
 * serial ping-pong, before the signal (the noise floor) and after it. */
static int mode_pause(char **a) {
    const char *dest = a[1];
    double secs = atof(a[2]);
    long pid = a[3][strspn(a[3], "0123456789")] == '\0' ? atol(a[3]) : 0;
    conn_t c = {0};
    conn_open(&c, 0);
    out_msg_t call = {.type = T_CALL, .path = "/org/bench/Echo", .iface = "org.bench.Echo", .member = "Ping",
                      .dest = dest};
    conn_t *cs[1] = {&c};
    double t0 = now(), last = t0, gap_before = 0, gap_after = 0;
    int signalled = 0, pending = 0;
    long calls = 0;
    for (;;) {
        if (!pending) {
            send_msg(&c, call);
            pending = 1;
        }
        if (pump(cs, 1, 1000) < 0) die("bus closed the connection");
        in_msg_t m;
        while (next_msg(&c, &m)) {
            if (m.type == T_ERROR) die("call failed: %s", m.errname ? m.errname : "?");
            if (m.type != T_RETURN) continue;
            pending = 0;
            calls++;
            double t = now();
            if (signalled) {
                if (t - last > gap_after) gap_after = t - last;
            } else if (t - last > gap_before) {
                gap_before = t - last;
            }
            last = t;
        }
        double t = now();
        if (!signalled && t - t0 >= secs / 3) {
            if (pid > 0) {
                if (kill((pid_t)pid, SIGUSR2) < 0) die("kill %ld: %s", pid, strerror(errno));
            } else {
                /* A handover between processes: start the successor, not waited for (it is the bus now). */
                pid_t child = fork();
                if (child < 0) die("fork: %s", strerror(errno));
                if (child == 0) {
                    execl("/bin/sh", "sh", "-c", a[3], (char *)NULL);
                    _exit(127);
                }
            }
            signalled = 1;
        }
        if (t - t0 >= secs) break;
    }
    printf("{\"calls\":%ld,\"max_gap_before_ms\":%.3f,\"max_gap_ms\":%.3f}\n", calls, gap_before * 1e3,
           gap_after * 1e3);
    return 0;
}

/* Storm client steps: 0 SASL, 1 Hello, 2 RequestName, 3 AddMatch, 4 calls, 5 done */
static int mode_storm(char **a) {
    int nclients = atoi(a[1]);
    int ncalls = atoi(a[2]);
    const char *dest = a[3];
    long pid = atol(a[4]);
    raise_nofile();
    conn_t *conns = calloc((size_t)nclients, sizeof *conns);
    conn_t **cs = calloc((size_t)nclients, sizeof *cs);
    out_msg_t call = {.type = T_CALL, .path = "/org/bench/Echo", .iface = "org.bench.Echo", .member = "Ping",
                      .dest = dest};
    double cpu0 = bus_cpu(pid);
    double t0 = now();
    for (int i = 0; i < nclients; i++) {
        cs[i] = &conns[i];
        conn_reset(cs[i]);
        cs[i]->fd = sock_connect(1);
        put_u8(&cs[i]->out, 0);
        put(&cs[i]->out, g_auth, strlen(g_auth));
    }
    int remaining = nclients;
    long calls = 0;
    while (remaining > 0) {
        int live = 0;
        conn_t *act[nclients];
        for (int i = 0; i < nclients; i++)
            if (cs[i]->step < 5) act[live++] = cs[i];
        if (pump(act, live, 10000) < 0) die("bus closed a connection during the storm");
        for (int k = 0; k < live; k++) {
            conn_t *c = act[k];
            if (c->step == 0) {
                uint8_t *s = c->in.p + c->in_off;
                size_t avail = c->in.len - c->in_off;
                uint8_t *eol = avail ? memmem(s, avail, "\r\n", 2) : NULL;
                if (!eol) continue;
                if (memcmp(s, "OK ", 3) != 0) die("SASL rejected in storm");
                c->in_off += (size_t)(eol - s) + 2;
                put(&c->out, "BEGIN\r\n", 7);
                c->waiting = send_hello(c);
                c->step = 1;
            }
            in_msg_t m;
            while (c->step < 5 && next_msg(c, &m)) {
                if (m.type == T_ERROR && m.reply_serial == c->waiting)
                    die("storm step %d failed: %s", c->step, m.errname ? m.errname : "?");
                if (m.type != T_RETURN || m.reply_serial != c->waiting) continue;
                char nm[64];
                switch (c->step) {
                case 1:
                    snprintf(nm, sizeof nm, "org.bench.Storm.C%ld", (long)(c - conns));
                    c->waiting = send_request_name(c, nm);
                    c->step = 2;
                    break;
                case 2:
                    c->waiting = send_addmatch(c, "type='signal',sender='org.freedesktop.DBus',"
                                                  "interface='org.freedesktop.DBus',member='NameOwnerChanged'");
                    c->step = 3;
                    break;
                case 3:
                    c->step = 4;
                    c->count = 0;
                    c->waiting = send_msg(c, call);
                    break;
                case 4:
                    calls++;
                    if (++c->count < ncalls) {
                        c->waiting = send_msg(c, call);
                    } else {
                        c->step = 5;
                        remaining--;
                    }
                    break;
                }
            }
            if (c->out_off < c->out.len && flush_some(c) < 0) die("bus closed a connection during the storm");
        }
    }
    double el = now() - t0;
    double cpu = bus_cpu(pid) - cpu0;
    for (int i = 0; i < nclients; i++) conn_close(cs[i]);
    char extra[64];
    snprintf(extra, sizeof extra, "\"clients\":%d,\"calls_per_client\":%d", nclients, ncalls);
    print_result(extra, calls, el, cpu);
    return 0;
}

static uint32_t call_driver_s(conn_t *c, const char *member, const char *arg) {
    buf_t b = {0};
    body_str(&b, arg);
    uint32_t s = call_driver(c, member, "s", &b);
    free(b.p);
    return s;
}

static int mode_names(char **a) {
    int nnames = atoi(a[1]);
    const char *op = a[2];
    double secs = atof(a[3]);
    long pid = atol(a[4]);
    int is_signal = strcmp(op, "signal") == 0;
    if (!is_signal && strcmp(op, "request") && strcmp(op, "getowner") && strcmp(op, "list"))
        die("names: unknown op %s", op);
    conn_t owner = {0}, other = {0};
    conn_open(&owner, 0);
    conn_open(&other, 0);
    int fl = fcntl(owner.fd, F_GETFL);
    fcntl(owner.fd, F_SETFL, fl & ~O_NONBLOCK);
    char name[64];
    uint32_t last = 0;
    for (int i = 0; i < nnames; i++) {
        snprintf(name, sizeof name, "org.bench.Name%d", i);
        last = send_request_name(&owner, name);
        if (owner.out.len > (1u << 18)) wait_reply(&owner, last, NULL);
    }
    if (last) wait_reply(&owner, last, NULL);
    fcntl(owner.fd, F_SETFL, fl);
    if (is_signal) {
        char rule[160];
        snprintf(rule, sizeof rule, "type='signal',sender='org.bench.Name%d',interface='org.bench.Names',member='Tick'",
                 nnames > 0 ? nnames - 1 : 0);
        fl = fcntl(other.fd, F_GETFL);
        fcntl(other.fd, F_SETFL, fl & ~O_NONBLOCK);
        wait_reply(&other, send_addmatch(&other, rule), NULL);
        fcntl(other.fd, F_SETFL, fl);
    }
    conn_t *cs[2] = {&owner, &other};
    /* Calls go out on the other client (request: on the owner, whose names grow). */
    conn_t *caller = strcmp(op, "request") == 0 ? &owner : &other;
    out_msg_t sig = {.type = T_SIGNAL, .path = "/org/bench/Names", .iface = "org.bench.Names", .member = "Tick"};
    long sent = 0, done = 0, base = 0;
    unsigned seed = 1;
    double warm = secs * 0.15 < 0.1 ? 0.1 : secs * 0.15;
    double t0 = now(), tstart = 0, tend = 0, cpu0 = 0;
    int measuring = 0;
    for (;;) {
        if (is_signal) {
            while (sent - done < 128) {
                send_msg(&owner, sig);
                sent++;
            }
        } else {
            while (sent - done < 32) {
                if (strcmp(op, "request") == 0) {
                    if (sent % 2 == 0) send_request_name(caller, "org.bench.Extra");
                    else call_driver_s(caller, "ReleaseName", "org.bench.Extra");
                } else if (strcmp(op, "getowner") == 0) {
                    snprintf(name, sizeof name, "org.bench.Name%d", nnames > 0 ? (int)(rand_r(&seed) % nnames) : 0);
                    call_driver_s(caller, "GetNameOwner", name);
                } else {
                    call_driver(caller, "ListNames", NULL, NULL);
                }
                sent++;
            }
        }
        if (pump(cs, 2, 1000) < 0) die("bus closed a connection");
        in_msg_t m;
        for (int i = 0; i < 2; i++)
            while (next_msg(cs[i], &m)) {
                if (m.type == T_ERROR) die("call failed: %s", m.errname ? m.errname : "?");
                if (is_signal ? (i == 1 && m.type == T_SIGNAL && m.member && strcmp(m.member, "Tick") == 0)
                              : (cs[i] == caller && m.type == T_RETURN))
                    done++;
            }
        double t = now();
        if (!measuring && t - t0 >= warm) {
            measuring = 1;
            tstart = t;
            base = done;
            cpu0 = bus_cpu(pid);
        } else if (measuring && t - tstart >= secs) {
            tend = t;
            break;
        }
    }
    double cpu = bus_cpu(pid) - cpu0;
    char extra[96];
    snprintf(extra, sizeof extra, "\"names\":%d,\"op\":\"%s\"", nnames, op);
    print_result(extra, done - base, tend - tstart, cpu);
    return 0;
}

int main(int argc, char **argv) {
    struct {
        const char *name;
        int nargs;
        int (*fn)(char **);
    } modes[] = {{"echo", 2, mode_echo},       {"calls", 6, mode_calls}, {"unicast", 5, mode_unicast},
                 {"fanout", 6, mode_fanout},   {"fanout-spread", 7, mode_fanout_spread},
                 {"connect", 3, mode_connect}, {"hold", 3, mode_hold},
                 {"storm", 5, mode_storm},     {"pause", 4, mode_pause},
                 {"names", 5, mode_names}};
    if (argc >= 2) {
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            if (strcmp(argv[1], modes[i].name) == 0) {
                if (argc - 2 != modes[i].nargs) die("%s takes %d arguments", modes[i].name, modes[i].nargs);
                parse_address(argv[2]);
                return modes[i].fn(argv + 2);
            }
        }
    }
    fprintf(stderr, "usage: busbench MODE ADDR ARGS... (see the comment at the top of busbench.c)\n");
    return 2;
}
