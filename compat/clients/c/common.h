/* What the C drivers of the matrix agree on with the fixture: names, the
 * signal rules, the 32 MiB pattern and the exit codes (0 pass, 1 fail, 77 n/a). */
#ifndef COMPAT_C_COMMON_H
#define COMPAT_C_COMMON_H

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IFACE "org.kdbusbridge.Compat"
#define OPATH "/org/kdbusbridge/Compat"
#define DBUS_NAME "org.freedesktop.DBus"
#define DBUS_OPATH "/org/freedesktop/DBus"
#define MATCH_RULE "type='signal',interface='" IFACE "',member='Tick',arg0='yes',arg1='b1',path_namespace='" OPATH "/ns'"
#define END_RULE "type='signal',interface='" IFACE "',member='End'"
#define TICK_1 OPATH "/ns"
#define TICK_2 OPATH "/ns/a/b"
#define LARGE (32u * 1024u * 1024u)
#define EXIT_NA 77

static const char *compat_env(const char *key, const char *fallback) {
    const char *v = getenv(key);
    return v && *v ? v : fallback;
}
#define ADDRESS compat_env("COMPAT_ADDRESS", "")
#define TCP_ADDRESS compat_env("COMPAT_TCP_ADDRESS", "")
#define FIXTURE compat_env("COMPAT_FIXTURE", IFACE ".Fixture")
#define CALLEE compat_env("COMPAT_CALLEE", IFACE ".Callee")

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}
#define CHECK(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)
#define EQUAL_STR(got, want, what) do { const char *g_ = (got), *w_ = (want); \
    if (!g_ || strcmp(g_, w_) != 0) fail("%s: got '%s', want '%s'", (what), g_ ? g_ : "(null)", w_); } while (0)
#define EQUAL_INT(got, want, what) do { long long g_ = (long long)(got), w_ = (long long)(want); \
    if (g_ != w_) fail("%s: got %lld, want %lld", (what), g_, w_); } while (0)

static void token(char out[16]) {
    unsigned char b[6];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(b, 1, sizeof b, f) != sizeof b) fail("no /dev/urandom");
    fclose(f);
    snprintf(out, 16, "t%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static unsigned char *pattern(size_t size) {
    unsigned char *p = malloc(size);
    if (!p) fail("out of memory");
    for (size_t i = 0; i < size; i++) p[i] = (unsigned char)((i % (251 * 64)) % 251);
    return p;
}

static void sha256_hex(const unsigned char *data, size_t size, char out[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    if (!EVP_Digest(data, size, md, &len, EVP_sha256(), NULL) || len != 32) fail("sha256 failed");
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct scenario {
    const char *name;
    void (*run)(void);
};

static int run_scenario(const struct scenario *list, const char *name) {
    for (; list->name; list++) {
        if (strcmp(list->name, name) == 0) {
            list->run();
            return 0;
        }
    }
    fprintf(stderr, "not expressible with this client\n");
    return EXIT_NA;
}

#endif
