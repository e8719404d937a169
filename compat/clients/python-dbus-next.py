#!/usr/bin/python3
"""Matrix driver for python3-dbus-next (pure Python asyncio). usage: python-dbus-next.py SCENARIO"""
import asyncio
import os

from dbus_next import Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.auth import AuthAnnonymous, AuthExternal

from compat_common import (DBUS, END_RULE, EXPECTED_TICKS, IFACE, LARGE, MATCH_RULE, PATH, Failure, address,
                           callee, check, equal, fixture, main, pattern, sha256, tcp_address, token)

BUS_PATH = "/org/freedesktop/DBus"


async def connect(addr=None, fds=False):
    addr = addr or address
    # A tcp peer has no credentials that EXTERNAL could be checked against.
    auth = AuthAnnonymous() if addr.startswith("tcp:") else AuthExternal()
    return await MessageBus(bus_address=addr, auth=auth, negotiate_unix_fd=fds).connect()


async def call(bus, member, signature="", body=(), dest=None, path=PATH, iface=IFACE, unix_fds=()):
    reply = await bus.call(Message(destination=dest or fixture, path=path, interface=iface, member=member,
                                   signature=signature, body=list(body), unix_fds=list(unix_fds)))
    return reply


async def ok(bus, *args, **kw):
    reply = await call(bus, *args, **kw)
    if reply.message_type == MessageType.ERROR:
        raise Failure("%s: %s %s" % (args[0], reply.error_name, reply.body))
    return reply


async def driver(bus, member, signature="", body=()):
    return await call(bus, member, signature, body, dest=DBUS, path=BUS_PATH, iface=DBUS)


async def driver_ok(bus, member, signature="", body=()):
    return await ok(bus, member, signature, body, dest=DBUS, path=BUS_PATH, iface=DBUS)


def collect(bus, keep):
    """Queues the signals `keep` accepts, in arrival order."""
    queue = asyncio.Queue()

    def handler(msg):
        if msg.message_type == MessageType.SIGNAL and keep(msg):
            queue.put_nowait(msg)
    bus.add_message_handler(handler)
    return queue


async def until(queue, stop, what):
    seen = []
    try:
        while True:
            msg = await asyncio.wait_for(queue.get(), 5)
            seen.append(msg)
            if stop(msg):
                return seen
    except asyncio.TimeoutError:
        raise Failure(what) from None


async def hello(addr):
    check(addr, "no address")
    bus = await connect(addr)
    me = bus.unique_name
    check(me and me.startswith(":"), "unique name %r" % me)
    equal((await driver_ok(bus, "GetNameOwner", "s", [me])).body, [me], "GetNameOwner(self)")
    check(DBUS in (await driver_ok(bus, "ListNames")).body[0], "ListNames lacks the driver")


async def names():
    a, b, c = await connect(), await connect(), await connect()
    name = IFACE + ".N" + token()
    qa = collect(a, lambda m: m.member == "NameLost" and m.body == [name])
    qb = collect(b, lambda m: m.member == "NameAcquired" and m.body == [name])

    async def request(bus, flags):
        return (await driver_ok(bus, "RequestName", "su", [name, flags])).body[0]
    equal(await request(a, 1 | 4), 1, "A RequestName")
    equal(await request(b, 4), 3, "B RequestName DO_NOT_QUEUE")
    equal(await request(b, 0), 2, "B RequestName queued")
    equal((await driver_ok(a, "ListQueuedOwners", "s", [name])).body[0], [a.unique_name, b.unique_name], "ListQueuedOwners")
    equal(await request(c, 2 | 4), 1, "C RequestName REPLACE_EXISTING")
    equal((await driver_ok(a, "GetNameOwner", "s", [name])).body[0], c.unique_name, "owner after replacement")
    equal((await driver_ok(c, "ReleaseName", "s", [name])).body[0], 1, "C ReleaseName")
    equal((await driver_ok(a, "GetNameOwner", "s", [name])).body[0], b.unique_name, "owner after release")
    await until(qa, lambda m: True, "A got no NameLost")
    await until(qb, lambda m: True, "B got no NameAcquired")


async def call_():
    bus = await connect()
    t = token()
    equal((await ok(bus, "Echo", "s", [t])).body, [t], "Echo")
    equal((await ok(bus, "Add", "ii", [40, 2])).body, [42], "Add")
    r = await call(bus, "Fail", "s", ["boom"])
    equal((r.message_type, r.error_name, r.body), (MessageType.ERROR, IFACE + ".Error.Failed", ["boom"]), "error")
    r = await driver(bus, "GetNameOwner", "s", ["org.kdbusbridge.Nobody"])
    equal(r.error_name, DBUS + ".Error.NameHasNoOwner", "GetNameOwner(nobody)")


async def signals():
    bus = await connect()
    q = collect(bus, lambda m: m.interface == IFACE)
    await driver_ok(bus, "AddMatch", "s", [MATCH_RULE])
    await driver_ok(bus, "AddMatch", "s", [END_RULE])
    await ok(bus, "EmitMatches")
    seen = await until(q, lambda m: m.member == "End", "no End signal")
    equal([m.path for m in seen if m.member in ("Tick", "Tock")], EXPECTED_TICKS, "matched signals")


async def unicast():
    bus, observer = await connect(), await connect()
    got = collect(bus, lambda m: m.interface == IFACE)
    watched = collect(observer, lambda m: m.interface == IFACE)
    await driver_ok(observer, "AddMatch", "s", ["type='signal',interface='%s'" % IFACE])
    t = token()
    await ok(bus, "EmitTo", "ss", [bus.unique_name, t])
    seen = await until(got, lambda m: m.member == "Unicast", "unicast signal missing")
    equal(seen[-1].body, [t], "unicast body")
    for m in await until(watched, lambda m: m.member == "End", "observer saw no End"):
        check(m.member != "Unicast", "a unicast signal reached a non-recipient")


async def fds():
    bus = await connect(fds=True)
    t = token()
    r, w = os.pipe()
    os.write(w, t.encode())
    os.close(w)
    reply = await ok(bus, "ReadFd", "h", [0], unix_fds=[r])
    os.close(r)
    equal(reply.body, [t], "ReadFd")
    reply = await ok(bus, "MakeFd", "s", [t])
    check(len(reply.unix_fds) == 1, "MakeFd reply carries %d fds" % len(reply.unix_fds))
    with os.fdopen(reply.unix_fds[reply.body[0]], "rb") as f:
        equal(f.read(4096).decode(), t, "MakeFd content")


async def properties():
    bus = await connect()
    props = "org.freedesktop.DBus.Properties"
    equal((await ok(bus, "Get", "ss", [IFACE, "Name"], iface=props)).body[0].value, "compat-fixture", "Get Name")
    await ok(bus, "Set", "ssv", [IFACE, "Count", Variant("i", 42)], iface=props)
    equal((await ok(bus, "Get", "ss", [IFACE, "Count"], iface=props)).body[0].value, 42, "Get Count after Set")
    equal((await ok(bus, "GetAll", "s", [IFACE], iface=props)).body[0]["Count"].value, 42, "GetAll Count")
    xml = (await ok(bus, "Introspect", iface="org.freedesktop.DBus.Introspectable")).body[0]
    check('<interface name="%s">' % IFACE in xml and 'name="Echo"' in xml, "Introspect lacks the interface")


async def large():
    bus = await connect()
    data = pattern(LARGE)
    equal((await ok(bus, "Digest", "ay", [data])).body, [LARGE, sha256(data)], "Digest of 32 MiB")
    blob = (await ok(bus, "Blob", "u", [LARGE])).body[0]
    check(bytes(blob) == data, "32 MiB reply differs (%d bytes)" % len(blob))


async def monitor():
    mon, bus = await connect(), await connect()
    seen = set()
    t = token()
    done = asyncio.Event()

    def handler(msg):
        if msg.body == [t]:
            seen.add(msg.message_type)
            if {MessageType.METHOD_CALL, MessageType.METHOD_RETURN} <= seen:
                done.set()
        # Handled: a monitor must not answer the calls it sees.
        return True
    reply = await mon.call(Message(destination=DBUS, path=BUS_PATH, interface=DBUS + ".Monitoring",
                                   member="BecomeMonitor", signature="asu", body=[[], 0]))
    check(reply.message_type == MessageType.METHOD_RETURN, "BecomeMonitor: %s" % reply.error_name)
    mon.add_message_handler(handler)
    await asyncio.sleep(0.2)
    equal((await ok(bus, "Echo", "s", [t])).body, [t], "Echo")
    try:
        await asyncio.wait_for(done.wait(), 5)
    except asyncio.TimeoutError:
        raise Failure("monitor did not see the reply" if MessageType.METHOD_CALL in seen
                      else "monitor did not see the call") from None


async def noreply():
    bus = await connect()
    q = collect(bus, lambda m: m.member == "NameOwnerChanged" and m.body[:1] == [callee])
    await driver_ok(bus, "AddMatch", "s", ["type='signal',sender='%s',member='NameOwnerChanged',arg0='%s'" % (DBUS, callee)])
    owner = (await driver_ok(bus, "GetNameOwner", "s", [callee])).body[0]
    r = await asyncio.wait_for(call(bus, "Hang", dest=callee), 20)
    equal((r.message_type, r.error_name), (MessageType.ERROR, DBUS + ".Error.NoReply"), "reply of the pending call")
    seen = await until(q, lambda m: True, "no NameOwnerChanged")
    equal(seen[-1].body, [callee, owner, ""], "NameOwnerChanged")


def run(coro):
    return lambda: asyncio.run(coro())


if __name__ == "__main__":
    main({"hello-unix": lambda: asyncio.run(hello(address)), "hello-tcp": lambda: asyncio.run(hello(tcp_address)),
          "names": run(names), "call": run(call_), "signals": run(signals), "unicast": run(unicast), "fds": run(fds),
          "properties": run(properties), "large": run(large), "monitor": run(monitor), "noreply": run(noreply)})
