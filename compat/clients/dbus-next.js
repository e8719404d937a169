#!/usr/bin/env node
'use strict';
// Matrix driver for dbus-next (Node.js). usage: dbus-next.js SCENARIO
const crypto = require('crypto');
const path = require('path');
const dbus = require(require.resolve('dbus-next', { paths: [path.resolve(__dirname, '..', '..')] }));

const { Message, MessageType, Variant } = dbus;
const IFACE = 'org.kdbusbridge.Compat';
const OPATH = '/org/kdbusbridge/Compat';
const DBUS = 'org.freedesktop.DBus';
const FIX = process.env.COMPAT_FIXTURE || `${IFACE}.Fixture`;
const CALLEE = process.env.COMPAT_CALLEE || `${IFACE}.Callee`;
const MATCH_RULE = `type='signal',interface='${IFACE}',member='Tick',arg0='yes',arg1='b1',path_namespace='${OPATH}/ns'`;
const END_RULE = `type='signal',interface='${IFACE}',member='End'`;
const EXPECTED_TICKS = [`${OPATH}/ns`, `${OPATH}/ns/a/b`];
const LARGE = 32 * 1024 * 1024;

class Failure extends Error {}
const check = (cond, what) => { if (!cond) throw new Failure(what); };
const equal = (got, want, what) => {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Failure(`${what}: got ${g}, want ${w}`);
};
const token = () => `t${crypto.randomBytes(6).toString('hex')}`;
const connect = async (address) => {
  const bus = dbus.sessionBus({ busAddress: address || process.env.COMPAT_ADDRESS });
  await new Promise((resolve, reject) => { bus.on('connect', resolve); bus.on('error', reject); });
  return bus;
};
const call = async (bus, destination, member, signature = '', body = [], iface = IFACE, objPath = OPATH) => {
  const reply = await bus.call(new Message({ destination, path: objPath, interface: iface, member, signature, body }));
  return reply.body;
};
const driver = (bus, member, signature, body) => call(bus, DBUS, member, signature, body, DBUS, '/org/freedesktop/DBus');
const waitFor = async (cond, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
};
const signalsOf = (bus) => {
  const seen = [];
  bus.on('message', (m) => { if (m.type === MessageType.SIGNAL) seen.push(m); });
  return seen;
};
const pattern = (size) => {
  const block = Buffer.alloc(251 * 64);
  for (let i = 0; i < block.length; i++) block[i] = i % 251;
  const out = Buffer.alloc(size);
  for (let o = 0; o < size; o += block.length) block.copy(out, o, 0, Math.min(block.length, size - o));
  return out;
};

async function hello(address) {
  const bus = await connect(address);
  check(bus.name && bus.name.startsWith(':'), `unique name ${bus.name}`);
  equal(await driver(bus, 'GetNameOwner', 's', [bus.name]), [bus.name], 'GetNameOwner(self)');
}

const SCENARIOS = {
  'hello-unix': () => hello(process.env.COMPAT_ADDRESS),
  'hello-tcp': () => hello(process.env.COMPAT_TCP_ADDRESS),
  async names() {
    const [a, b, c] = [await connect(), await connect(), await connect()];
    const name = `org.kdbusbridge.Compat.N${token()}`;
    const sa = signalsOf(a);
    const sb = signalsOf(b);
    equal(await a.requestName(name, 1 | 4), 1, 'A RequestName');
    equal(await b.requestName(name, 4), 3, 'B RequestName DO_NOT_QUEUE');
    equal(await b.requestName(name, 0), 2, 'B RequestName queued');
    equal(await driver(a, 'ListQueuedOwners', 's', [name]), [[a.name, b.name]], 'ListQueuedOwners');
    equal(await c.requestName(name, 2 | 4), 1, 'C RequestName REPLACE_EXISTING');
    equal(await driver(a, 'GetNameOwner', 's', [name]), [c.name], 'owner after replacement');
    equal(await c.releaseName(name), 1, 'C ReleaseName');
    equal(await driver(a, 'GetNameOwner', 's', [name]), [b.name], 'owner after release');
    check(await waitFor(() => sa.some((m) => m.member === 'NameLost' && m.body[0] === name)), 'A got no NameLost');
    check(await waitFor(() => sb.some((m) => m.member === 'NameAcquired' && m.body[0] === name)), 'B got no NameAcquired');
  },
  async call() {
    const bus = await connect();
    const t = token();
    equal(await call(bus, FIX, 'Echo', 's', [t]), [t], 'Echo');
    equal(await call(bus, FIX, 'Add', 'ii', [40, 2]), [42], 'Add');
    try {
      await call(bus, FIX, 'Fail', 's', ['boom']);
    } catch (e) {
      if (e instanceof Failure) throw e;
      equal([e.type, e.text], [`${IFACE}.Error.Failed`, 'boom'], 'error');
      return;
    }
    throw new Failure('Fail() returned');
  },
  async signals() {
    const bus = await connect();
    const seen = signalsOf(bus);
    await driver(bus, 'AddMatch', 's', [MATCH_RULE]);
    await driver(bus, 'AddMatch', 's', [END_RULE]);
    await call(bus, FIX, 'EmitMatches');
    check(await waitFor(() => seen.some((m) => m.member === 'End')), 'no End signal');
    equal(seen.filter((m) => m.member === 'Tick' || m.member === 'Tock').map((m) => m.path), EXPECTED_TICKS, 'matched signals');
  },
  async unicast() {
    const bus = await connect();
    const observer = await connect();
    const got = signalsOf(bus);
    const watched = signalsOf(observer);
    await driver(observer, 'AddMatch', 's', [`type='signal',interface='${IFACE}'`]);
    const t = token();
    await call(bus, FIX, 'EmitTo', 'ss', [bus.name, t]);
    check(await waitFor(() => got.some((m) => m.member === 'Unicast') && watched.some((m) => m.member === 'End')), 'unicast signal or End missing');
    equal(got.filter((m) => m.member === 'Unicast')[0].body, [t], 'unicast body');
    check(!watched.some((m) => m.member === 'Unicast'), 'a unicast signal reached a non-recipient');
  },
  async properties() {
    const bus = await connect();
    const P = 'org.freedesktop.DBus.Properties';
    equal((await call(bus, FIX, 'Get', 'ss', [IFACE, 'Name'], P))[0].value, 'compat-fixture', 'Get Name');
    await call(bus, FIX, 'Set', 'ssv', [IFACE, 'Count', new Variant('i', 42)], P);
    equal((await call(bus, FIX, 'Get', 'ss', [IFACE, 'Count'], P))[0].value, 42, 'Get Count');
    const obj = await bus.getProxyObject(FIX, OPATH);
    check(obj.getInterface(IFACE) && typeof obj.getInterface(IFACE).Echo === 'function', 'Introspect lacks Echo');
  },
  async large() {
    const bus = await connect();
    const data = pattern(LARGE);
    const digest = crypto.createHash('sha256').update(data).digest('hex');
    equal(await call(bus, FIX, 'Digest', 'ay', [data]), [LARGE, digest], 'Digest of 32 MiB');
    const [blob] = await call(bus, FIX, 'Blob', 'u', [LARGE]);
    equal([blob.length, crypto.createHash('sha256').update(blob).digest('hex')], [LARGE, digest], '32 MiB reply');
  },
  async noreply() {
    const bus = await connect();
    const seen = signalsOf(bus);
    await driver(bus, 'AddMatch', 's', [`type='signal',sender='${DBUS}',member='NameOwnerChanged',arg0='${CALLEE}'`]);
    const [owner] = await driver(bus, 'GetNameOwner', 's', [CALLEE]);
    try {
      await call(bus, CALLEE, 'Hang');
      throw new Failure('Hang() returned');
    } catch (e) {
      if (e instanceof Failure) throw e;
      equal(e.type, `${DBUS}.Error.NoReply`, 'error of the pending call');
    }
    check(await waitFor(() => seen.some((m) => m.member === 'NameOwnerChanged')), 'no NameOwnerChanged');
    equal(seen.find((m) => m.member === 'NameOwnerChanged').body, [CALLEE, owner, ''], 'NameOwnerChanged');
  },
};

const fn = SCENARIOS[process.argv[2]];
if (!fn) { process.stderr.write('not expressible with this client\n'); process.exit(77); }
fn().then(() => process.exit(0), (e) => {
  process.stderr.write(`${e instanceof Failure ? '' : `${e.name}: `}${String(e.message || e).replace(/\n/g, ' ')}\n`);
  process.exit(1);
});
