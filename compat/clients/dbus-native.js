#!/usr/bin/env node
'use strict';
// Matrix driver for dbus-native (Node.js). usage: dbus-native.js SCENARIO
// dbus-native cannot pass unix fds: "fds" is not expressible.
const crypto = require('crypto');
const path = require('path');
const dbus = require(require.resolve('dbus-native', { paths: [path.resolve(__dirname, '..', '..')] }));

const IFACE = 'org.kdbusbridge.Compat';
const OPATH = '/org/kdbusbridge/Compat';
const DBUS = 'org.freedesktop.DBus';
const FIX = process.env.COMPAT_FIXTURE || `${IFACE}.Fixture`;
const CALLEE = process.env.COMPAT_CALLEE || `${IFACE}.Callee`;
const MATCH_RULE = `type='signal',interface='${IFACE}',member='Tick',arg0='yes',arg1='b1',path_namespace='${OPATH}/ns'`;
const END_RULE = `type='signal',interface='${IFACE}',member='End'`;
const EXPECTED_TICKS = [`${OPATH}/ns`, `${OPATH}/ns/a/b`];
const LARGE = 32 * 1024 * 1024;
const SIGNAL = 4;

class Failure extends Error {}
const check = (cond, what) => { if (!cond) throw new Failure(what); };
const equal = (got, want, what) => {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Failure(`${what}: got ${g}, want ${w}`);
};
const token = () => `t${crypto.randomBytes(6).toString('hex')}`;
const waitFor = async (cond, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

// Every message the connection receives, in order.
async function connect(address) {
  const bus = dbus.sessionBus({ busAddress: address || process.env.COMPAT_ADDRESS });
  bus.seen = [];
  bus.connection.on('message', (m) => bus.seen.push(m));
  bus.connection.on('error', (e) => { bus.error = e; });
  check(await waitFor(() => bus.name || bus.error, 10000), 'no reply to Hello');
  if (bus.error) throw bus.error;
  return bus;
}

// Resolves with the reply body; rejects with {name, body} on an error reply.
function invoke(bus, msg) {
  return new Promise((resolve, reject) => {
    bus.invoke(msg, function onReply(err, ...body) {
      if (err) reject(Object.assign(new Error(`${this.message.errorName}: ${err}`), { dbusName: this.message.errorName, body: err }));
      else resolve(body);
    });
  });
}
const fix = (bus, member, signature, body, extra = {}) => invoke(bus, { destination: FIX, path: OPATH, interface: IFACE, member, signature, body, ...extra });
const driver = (bus, member, signature, body) => invoke(bus, { destination: DBUS, path: '/org/freedesktop/DBus', interface: DBUS, member, signature, body });
const errorOf = async (p) => {
  try { await p; } catch (e) { if (e instanceof Failure) throw e; return e; }
  throw new Failure('call returned');
};
const signals = (bus, member) => bus.seen.filter((m) => m.type === SIGNAL && (!member || m.member === member));

async function hello(address) {
  const bus = await connect(address);
  check(bus.name.startsWith(':'), `unique name ${bus.name}`);
  equal(await driver(bus, 'GetNameOwner', 's', [bus.name]), [bus.name], 'GetNameOwner(self)');
  check((await driver(bus, 'ListNames'))[0].includes(DBUS), 'ListNames lacks the driver');
}

function pattern(size) {
  const block = Buffer.alloc(251 * 64);
  for (let i = 0; i < block.length; i++) block[i] = i % 251;
  const out = Buffer.alloc(size);
  for (let o = 0; o < size; o += block.length) block.copy(out, o, 0, Math.min(block.length, size - o));
  return out;
}

const SCENARIOS = {
  'hello-unix': () => hello(process.env.COMPAT_ADDRESS),
  'hello-tcp': () => hello(process.env.COMPAT_TCP_ADDRESS),
  async names() {
    const [a, b, c] = [await connect(), await connect(), await connect()];
    const name = `org.kdbusbridge.Compat.N${token()}`;
    equal(await driver(a, 'RequestName', 'su', [name, 1 | 4]), [1], 'A RequestName');
    equal(await driver(b, 'RequestName', 'su', [name, 4]), [3], 'B RequestName DO_NOT_QUEUE');
    equal(await driver(b, 'RequestName', 'su', [name, 0]), [2], 'B RequestName queued');
    equal(await driver(a, 'ListQueuedOwners', 's', [name]), [[a.name, b.name]], 'ListQueuedOwners');
    equal(await driver(c, 'RequestName', 'su', [name, 2 | 4]), [1], 'C RequestName REPLACE_EXISTING');
    equal(await driver(a, 'GetNameOwner', 's', [name]), [c.name], 'owner after replacement');
    equal(await driver(c, 'ReleaseName', 's', [name]), [1], 'C ReleaseName');
    equal(await driver(a, 'GetNameOwner', 's', [name]), [b.name], 'owner after release');
    check(await waitFor(() => signals(a, 'NameLost').some((m) => m.body[0] === name)), 'A got no NameLost');
    check(await waitFor(() => signals(b, 'NameAcquired').some((m) => m.body[0] === name)), 'B got no NameAcquired');
  },
  async call() {
    const bus = await connect();
    const t = token();
    equal(await fix(bus, 'Echo', 's', [t]), [t], 'Echo');
    equal(await fix(bus, 'Add', 'ii', [40, 2]), [42], 'Add');
    const e = await errorOf(fix(bus, 'Fail', 's', ['boom']));
    equal([e.dbusName, e.body], [`${IFACE}.Error.Failed`, ['boom']], 'error');
    equal((await errorOf(driver(bus, 'GetNameOwner', 's', ['org.kdbusbridge.Nobody']))).dbusName, `${DBUS}.Error.NameHasNoOwner`, 'GetNameOwner(nobody)');
  },
  async signals() {
    const bus = await connect();
    await driver(bus, 'AddMatch', 's', [MATCH_RULE]);
    await driver(bus, 'AddMatch', 's', [END_RULE]);
    await fix(bus, 'EmitMatches');
    check(await waitFor(() => signals(bus, 'End').length), 'no End signal');
    equal(signals(bus).filter((m) => m.member === 'Tick' || m.member === 'Tock').map((m) => m.path), EXPECTED_TICKS, 'matched signals');
  },
  async unicast() {
    const bus = await connect();
    const observer = await connect();
    await driver(observer, 'AddMatch', 's', [`type='signal',interface='${IFACE}'`]);
    const t = token();
    await fix(bus, 'EmitTo', 'ss', [bus.name, t]);
    check(await waitFor(() => signals(bus, 'Unicast').length && signals(observer, 'End').length), 'unicast signal or End missing');
    equal(signals(bus, 'Unicast')[0].body, [t], 'unicast body');
    check(!signals(observer, 'Unicast').length, 'a unicast signal reached a non-recipient');
  },
  async properties() {
    const bus = await connect();
    const P = 'org.freedesktop.DBus.Properties';
    const prop = (member, signature, body) => invoke(bus, { destination: FIX, path: OPATH, interface: P, member, signature, body });
    // dbus-native gives a variant as [[signature], [value]].
    const value = (v) => v[1][0];
    equal(value((await prop('Get', 'ss', [IFACE, 'Name']))[0]), 'compat-fixture', 'Get Name');
    await prop('Set', 'ssv', [IFACE, 'Count', ['i', 42]]);
    equal(value((await prop('Get', 'ss', [IFACE, 'Count']))[0]), 42, 'Get Count after Set');
    const all = (await prop('GetAll', 's', [IFACE]))[0];
    equal(value((all.find(([k]) => k === 'Count') || [null, [[], [null]]])[1]), 42, 'GetAll Count');
    const [xml] = await invoke(bus, { destination: FIX, path: OPATH, interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect' });
    check(xml.includes(`<interface name="${IFACE}">`) && xml.includes('name="Echo"'), 'Introspect lacks the interface');
  },
  async large() {
    const bus = await connect();
    const data = pattern(LARGE);
    const digest = crypto.createHash('sha256').update(data).digest('hex');
    equal(await fix(bus, 'Digest', 'ay', [data]), [LARGE, digest], 'Digest of 32 MiB');
    const [blob] = await fix(bus, 'Blob', 'u', [LARGE]);
    const buf = Buffer.from(blob);
    equal([buf.length, crypto.createHash('sha256').update(buf).digest('hex')], [LARGE, digest], '32 MiB reply');
  },
  async noreply() {
    const bus = await connect();
    await driver(bus, 'AddMatch', 's', [`type='signal',sender='${DBUS}',member='NameOwnerChanged',arg0='${CALLEE}'`]);
    const [owner] = await driver(bus, 'GetNameOwner', 's', [CALLEE]);
    const e = await errorOf(invoke(bus, { destination: CALLEE, path: OPATH, interface: IFACE, member: 'Hang' }));
    equal(e.dbusName, `${DBUS}.Error.NoReply`, 'error of the pending call');
    check(await waitFor(() => signals(bus, 'NameOwnerChanged').some((m) => m.body[0] === CALLEE)), 'no NameOwnerChanged');
    equal(signals(bus, 'NameOwnerChanged').find((m) => m.body[0] === CALLEE).body, [CALLEE, owner, ''], 'NameOwnerChanged');
  },
};

const fn = SCENARIOS[process.argv[2]];
if (!fn) { process.stderr.write('not expressible with this client\n'); process.exit(77); }
fn().then(() => process.exit(0), (e) => {
  process.stderr.write(`${e instanceof Failure ? '' : `${e.name}: `}${String(e.message || e).replace(/\n/g, ' ')}\n`);
  process.exit(1);
});
