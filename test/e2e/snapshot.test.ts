// The native half of a handover, in one process: the bus is frozen, a new
// native bus is restored from the snapshot on the same sockets, and real
// clients (dbus-next, dbus-send, gdbus, hand-written ones mid-SASL and mid-message)
// go on without noticing. The control plane (exec, fd passing) is tested
// in handover.test.ts.
import { execFile } from 'child_process';
import { promisify } from 'util';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Message } from 'dbus-next';
import { native, NativeBus } from '../../bridge/native';
import { Driver } from '../../bridge/driver/driver';
import { addMatch, callDriver, connect, Client } from '../helpers/client';
import { RawClient } from '../helpers/raw';
import { marshall } from '../helpers/frames';

const run = promisify(execFile);

interface Snapshotting {
  freeze(): { state: Buffer; fds: number[] };
  thaw(): void;
  abandon(): void;
}
const restore = (native as unknown as { restore(state: Buffer, fds: number[], options: object): NativeBus }).restore;
const checkState = (native as unknown as { checkState(state: Buffer): string | null }).checkState;
const duplicateFd = (native as unknown as { duplicateFd(fd: number): number }).duplicateFd;
// A restored bus takes over the fds it is given, so in the process that froze
// the old one it is given copies, as an exec or a successor would have.
const handedOver = (fds: number[]): number[] => fds.map((fd) => duplicateFd(fd));

// A bus as bridge/bus.ts makes it, whose driver follows the native bus
// across a restore.
function makeBus(dir: string) {
  let current: NativeBus;
  const proxy = new Proxy({} as NativeBus, {
    get: (_t, key) => {
      const v = (current as unknown as Record<string | symbol, unknown>)[key];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(current) : v;
    },
  });
  const guid = '0123456789abcdef0123456789abcdef';
  const driver = new Driver({
    native: proxy,
    guid,
    machineId: guid,
    busUid: os.userInfo().uid,
    features: () => [],
    reloadConfig: () => undefined,
    updateActivationEnvironment: () => undefined,
  });
  const options = {
    guid,
    machineId: guid,
    allowAnonymous: false,
    mechanisms: [],
    allowedUids: [],
    onDriverCall: (call: unknown) => driver.handle(call as Parameters<Driver['handle']>[0]),
  };
  current = new native.Bus(options);
  const address = current.listen(`unix:dir=${dir}`)[0];
  return {
    address,
    get bus() {
      return current;
    },
    /** freeze, restore a new native bus from the snapshot, drop the old one. */
    handOver(): { ms: number; freezeMs: number; bytes: number } {
      const old = current as unknown as Snapshotting & NativeBus;
      const t0 = process.hrtime.bigint();
      const { state, fds } = old.freeze();
      const t1 = process.hrtime.bigint();
      current = restore(state, handedOver(fds), options);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      old.abandon();
      old.shutdown();
      return { ms, freezeMs: Number(t1 - t0) / 1e6, bytes: state.length };
    },
    restoreFrom(state: Buffer, fds: number[]) {
      return restore(state, fds, options);
    },
  };
}

function helloBytes(serial: number): Buffer {
  return marshall({ type: 1, serial, path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'Hello', destination: 'org.freedesktop.DBus' });
}

describe('native snapshot: freeze, restore, thaw', () => {
  let dir: string;
  let bus: ReturnType<typeof makeBus>;
  const clients: Client[] = [];
  const raws: RawClient[] = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdbus-snapshot-'));
    bus = makeBus(dir);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const r of raws.splice(0)) r.socket.destroy();
    bus.bus.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('clients in every state go on across a restore, unique names and signals continue', async () => {
    const a = await connect(bus.address);
    const b = await connect(bus.address);
    clients.push(a, b);
    await callDriver(a.bus, 'RequestName', 'su', ['org.test.Snapshot', 0]);
    await addMatch(b.bus, "type='signal',interface='org.test.Snap'");
    const send = (n: number) =>
      a.bus.send(new Message({ type: 4, path: '/s', interface: 'org.test.Snap', member: 'Tick', signature: 'u', body: [n] }));
    for (let i = 0; i < 50; i++) send(i);
    // A slow reader: registered, matching the ticks, not reading.
    const slow = await RawClient.open(bus.address);
    raws.push(slow);
    await slow.authenticate();
    slow.socket.write(helloBytes(1));
    expect(await slow.readMessage()).not.toBeNull();
    slow.socket.write(
      marshall({ type: 1, serial: 2, path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch',
        destination: 'org.freedesktop.DBus', signature: 's', body: ["type='signal',interface='org.test.Snap'"] }),
    );
    expect(await slow.readMessage()).not.toBeNull();
    slow.socket.pause();
    const big = 'x'.repeat(4096);
    for (let i = 0; i < 400; i++)
      a.bus.send(new Message({ type: 4, path: '/s', interface: 'org.test.Snap', member: 'Big', signature: 'us', body: [i, big] }));
    await callDriver(a.bus, 'GetId');
    const credsBefore = (await callDriver(b.bus, 'GetConnectionCredentials', 's', [a.uniqueName])).body;

    // Half-way through SASL: AUTH answered, no BEGIN yet.
    const sasl = await RawClient.open(bus.address);
    raws.push(sasl);
    sasl.socket.write(Buffer.concat([Buffer.from([0]), Buffer.from(`AUTH EXTERNAL ${Buffer.from(String(os.userInfo().uid)).toString('hex')}\r\n`)]));
    expect(await sasl.readLine()).toMatch(/^OK [0-9a-f]{32}$/);
    // Half a Hello sent.
    const half = await RawClient.open(bus.address);
    raws.push(half);
    await half.authenticate();
    const hello = helloBytes(1);
    half.socket.write(hello.subarray(0, 20));
    await new Promise((r) => setTimeout(r, 50));

    const { ms, bytes } = bus.handOver();
    console.log(`restore: ${bytes} bytes, ${ms.toFixed(1)} ms`);

    for (let i = 50; i < 100; i++) send(i);
    await callDriver(b.bus, 'GetId');
    // Every signal once, in order, across the restore.
    const deadline = Date.now() + 5000;
    const ticks = () => b.received.filter((m) => m.member === 'Tick').map((m) => m.body[0] as number);
    while (ticks().length < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(ticks()).toEqual([...Array(100).keys()]);

    // The slow reader gets all it was due, once and in order.
    slow.socket.resume();
    const bigs: number[] = [];
    for (;;) {
      const m = await slow.readMessage(2000);
      if (m === null) break;
      const text = m.toString('latin1');
      if (!text.includes('Big')) continue;
      bigs.push(m.readUInt32LE(m.length - 4096 - 1 - 4 - 4));
      if (bigs.length === 400) break;
    }
    expect(bigs).toEqual([...Array(400).keys()]);

    half.socket.write(hello.subarray(20));
    const reply = await half.readMessage();
    expect(reply).not.toBeNull();
    expect(reply!.toString('latin1')).toContain(':1.');
    sasl.socket.write('BEGIN\r\n');
    sasl.socket.write(helloBytes(1));
    const saslReply = await sasl.readMessage();
    expect(saslReply).not.toBeNull();
    // Unique names go on from where the frozen bus was: a, b, slow (:1.0-2), then half and sasl.
    const names = [reply!, saslReply!].map((m) => /:1\.(\d+)/.exec(m.toString('latin1'))![1]).map(Number).sort();
    expect(names).toEqual([3, 4]);

    const owner = await callDriver(b.bus, 'GetNameOwner', 's', ['org.test.Snapshot']);
    expect(owner.body).toEqual([a.uniqueName]);
    const credsAfter = (await callDriver(b.bus, 'GetConnectionCredentials', 's', [a.uniqueName])).body;
    expect(credsAfter).toEqual(credsBefore);
    const { stdout } = await run('dbus-send', [`--bus=${bus.address}`, '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.ListNames']);
    expect(stdout).toContain('org.test.Snapshot');
    const gdbus = await run('gdbus', ['call', '--address', bus.address, '--dest', 'org.freedesktop.DBus', '--object-path', '/org/freedesktop/DBus',
      '--method', 'org.freedesktop.DBus.GetNameOwner', 'org.test.Snapshot']);
    expect(gdbus.stdout.trim()).toBe(`('${a.uniqueName}',)`);
    const c = await connect(bus.address);
    clients.push(c);
    expect(c.uniqueName).toBe(':1.7');
  });

  test('a refused snapshot leaves the frozen bus to thaw and go on', async () => {
    const a = await connect(bus.address);
    clients.push(a);
    const old = bus.bus as unknown as Snapshotting;
    const { state, fds } = old.freeze();
    const bad = Buffer.from(state);
    bad[bad.length - 3] ^= 0xff;
    expect(checkState(bad)).toBe('snapshot corrupt: checksum mismatch');
    expect(checkState(state)).toBeNull();
    const copies = handedOver(fds);
    expect(() => bus.restoreFrom(bad, copies)).toThrow('cannot restore the bus: snapshot corrupt: checksum mismatch');
    // Given to the bus even when it refuses: closed with it.
    for (const fd of copies) expect(() => fs.fstatSync(fd)).toThrow('EBADF');
    const wrong = Buffer.from(state);
    wrong.writeUInt32LE(7, 8);
    expect(() => bus.restoreFrom(wrong, handedOver(fds))).toThrow('snapshot format version 7, this build reads version 1');
    for (const fd of fds) expect(() => fs.fstatSync(fd)).not.toThrow();
    // Frozen: a new client gets no answer until the thaw.
    let connected = false;
    const pending = connect(bus.address).then((c) => {
      connected = true;
      clients.push(c);
      return c;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(connected).toBe(false);
    old.thaw();
    const c = await pending;
    expect(c.uniqueName).toBe(':1.1');
    expect((await callDriver(a.bus, 'GetNameOwner', 's', [c.uniqueName])).body).toEqual([c.uniqueName]);
  });

  test('the pause at 1,000 connections with 10,000 match rules (timing, not asserted)', async () => {
    const conns: RawClient[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = await RawClient.open(bus.address);
      raws.push(r);
      conns.push(r);
      await r.authenticate();
      const calls = [helloBytes(1)];
      for (let k = 0; k < 10; k++) {
        calls.push(
          marshall({ type: 1, serial: 2 + k, path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch',
            destination: 'org.freedesktop.DBus', signature: 's', body: [`type='signal',interface='org.test.I${k}',member='M${i}'`] }),
        );
      }
      r.socket.write(Buffer.concat(calls));
    }
    // Every client has its Hello and ten AddMatch answers.
    for (const r of conns) for (let k = 0; k < 11; k++) expect(await r.readMessage()).not.toBeNull();
    expect(bus.bus.stats().matchRules).toBe(10000);
    const { ms, freezeMs, bytes } = bus.handOver();
    console.log(`pause at 1,000 connections, 10,000 match rules: freeze + restore ${ms.toFixed(1)} ms (freeze ${freezeMs.toFixed(1)} ms), ${bytes} bytes`);
    expect(bus.bus.stats().matchRules).toBe(10000);
    const c = await connect(bus.address);
    clients.push(c);
    expect(c.uniqueName).toBe(':1.1000');
  }, 120000);
});
