"""What every Python client driver of the matrix agrees on with the fixture."""
import hashlib
import os
import sys

IFACE = "org.kdbusbridge.Compat"
PATH = "/org/kdbusbridge/Compat"
DBUS = "org.freedesktop.DBus"
NA = 77
LARGE = 32 * 1024 * 1024
# The Tick signals EmitMatches sends that the rule below must let through.
MATCH_RULE = ("type='signal',interface='%s',member='Tick',arg0='yes',arg1='b1',"
              "path_namespace='%s/ns'" % (IFACE, PATH))
END_RULE = "type='signal',interface='%s',member='End'" % IFACE
EXPECTED_TICKS = [PATH + "/ns", PATH + "/ns/a/b"]

address = os.environ.get("COMPAT_ADDRESS", "")
tcp_address = os.environ.get("COMPAT_TCP_ADDRESS", "")
fixture = os.environ.get("COMPAT_FIXTURE", IFACE + ".Fixture")
callee = os.environ.get("COMPAT_CALLEE", IFACE + ".Callee")


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def equal(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def pattern(size):
    block = bytes(i % 251 for i in range(251 * 64))
    return (block * (size // len(block) + 1))[:size]


def sha256(data):
    return hashlib.sha256(bytes(data)).hexdigest()


def token():
    return "t" + os.urandom(6).hex()


def main(scenarios):
    """Run sys.argv[1] from `scenarios` (name -> function); exit 0/1/77."""
    name = sys.argv[1]
    fn = scenarios.get(name)
    if fn is None:
        sys.stderr.write("not expressible with this client\n")
        sys.exit(NA)
    try:
        fn()
    except Failure as err:
        sys.stderr.write("%s\n" % err)
        sys.exit(1)
    except Exception as err:  # a client library error is a failed cell too
        sys.stderr.write("%s: %s\n" % (type(err).__name__, str(err).replace("\n", " ")))
        sys.exit(1)
    sys.exit(0)
