import { ChildProcess } from 'child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Message } from 'dbus-next';
import { native } from '../../bridge/native';
import { Attach, enableMetadata, readMetadata } from '../../bridge/client/metadata';
import { daemonPath, sessionLikeConfig } from '../helpers/bus';
import { callDriver, Client, connect } from '../helpers/client';
import { marshall } from '../helpers/frames';
import { run, sleep, spawnTracked, terminate, until, waitForLine } from '../helpers/processes';
import { RawClient } from '../helpers/raw';
import { fixture, PYTHON, startService, TEST_INTERFACE, TEST_PATH } from '../helpers/service';

// Handing the bus over (README: "Upgrading the bus without a reboot"): in
// place on SIGUSR2, and to another process through --handover-socket and
// --take-over. What must hold whatever the build: a handover that cannot
// happen loses nothing. What must hold once the addon can snapshot the bus:
// clients of several kinds see no difference at all across many handovers.

const canSnapshot = typeof (native.Bus.prototype as { freeze?: unknown }).freeze === 'function'
  && typeof (native as unknown as { restore?: unknown }).restore === 'function';
const HANDOVERS = Number(process.env.KDBUS_BRIDGE_HANDOVERS ?? 10);

interface Bus {
  address: string;
  child: ChildProcess;
  stderr: () => string;
}

let dir: string;
let config: string;
const clients: Client[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-handover-'));
  config = join(dir, 'bus.conf');
  // The client mid-SASL waits through every handover, longer at 100 each way
  // than the default auth_timeout (30 s): the bus would rightly drop it.
  writeFileSync(config, sessionLikeConfig(dir, '<limit name="reply_timeout">8000</limit><limit name="auth_timeout">900000</limit>'));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function startBus(extra: string[] = []): Promise<Bus> {
  const child = spawnTracked(daemonPath(), [`--config-file=${config}`, '--print-address', '--nofork', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const address = (await waitForLine(child, /^unix:/)).trim();
  child.stdout?.resume();
  return { address, child, stderr: () => err };
}

async function client(address: string): Promise<Client> {
  const c = await connect(address);
  clients.push(c);
  return c;
}

async function ownerOf(c: Client, name: string): Promise<string> {
  return (await callDriver(c.bus, 'GetNameOwner', 's', [name])).body[0] as string;
}

test('a failed in-place upgrade loses nothing, and says why', async () => {
  const bus = await startBus();
  const a = await client(bus.address);
  await callDriver(a.bus, 'RequestName', 'su', ['org.example.Kept', 4]);
  // The new program would not load this configuration: the old one keeps running.
  writeFileSync(config, '<busconfig><listen>');
  bus.child.kill('SIGUSR2');
  expect(await until(() => /Not upgrading in place: /.test(bus.stderr()), 20000)).toBe(true);
  expect(await ownerOf(a, 'org.example.Kept')).toBe(a.uniqueName);
  const b = await client(bus.address);
  expect(b.uniqueName).toBe(':1.1');
  expect(bus.child.pid).toBeDefined();
  await terminate(bus.child);
});

test('a successor that cannot take over leaves the bus serving', async () => {
  const socket = join(dir, 'handover');
  const bus = await startBus([`--handover-socket=${socket}`]);
  // Bound once the bus serves, just after it printed its address.
  expect(await until(() => existsSync(socket), 10000)).toBe(true);
  // Private to the bus's user.
  expect(statSync(socket).mode & 0o777).toBe(0o600);
  const a = await client(bus.address);
  await callDriver(a.bus, 'RequestName', 'su', ['org.example.Kept', 4]);
  writeFileSync(config, '<busconfig><listen>');
  const successor = await run(daemonPath(), [`--take-over=${socket}`], { timeoutMs: 60000 });
  expect(successor.code).toBe(1);
  expect(successor.stderr).toMatch(/Failed to (take the bus over|resume the message bus)/);
  expect(await ownerOf(a, 'org.example.Kept')).toBe(a.uniqueName);
  const b = await client(bus.address);
  expect(b.uniqueName).toBe(':1.1');
  expect(bus.child.exitCode).toBeNull();
  await terminate(bus.child);
});

(canSnapshot ? test : test.skip)('a successor says where its pause went (debug log)', async () => {
  const socket = join(dir, 'handover-timed');
  const bus = await startBus([`--handover-socket=${socket}`]);
  expect(await until(() => existsSync(socket), 10000)).toBe(true);
  const a = await client(bus.address);
  await callDriver(a.bus, 'AddMatch', 's', ["type='signal',interface='org.example.Timed'"]);
  const next = spawnTracked(daemonPath(), [`--take-over=${socket}`, '--print-pid'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KDBUS_BRIDGE_DEBUG: '1' },
  });
  let err = '';
  next.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  expect(Number((await waitForLine(next, /^\d+$/, 30000)).trim())).toBe(next.pid);
  expect(await until(() => /Took the bus over/.test(err), 10000)).toBe(true);
  const line = /handover timing: (.*)/.exec(err)?.[1] ?? '';
  // The old bus's freeze and the transfer come from the state it sent; the rest is the successor's.
  for (const step of ['freeze', 'state encoded, sent, received and decoded', 'native restore', 'driver, policy and activation', 'pause \\(frozen to serving\\)']) {
    expect(line).toMatch(new RegExp(`${step} \\d+\\.\\d ms`));
  }
  expect(await ownerOf(a, a.uniqueName)).toBe(a.uniqueName);
  await terminate(next);
});

test('--take-over of nothing fails clearly', async () => {
  const r = await run(daemonPath(), [`--take-over=${join(dir, 'nobody')}`], { timeoutMs: 30000 });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/Failed to take the bus over: connect .*No such file or directory/);
});

/** A service answering Echo, and a caller that checks every reply arrives exactly once, in order. */
async function echoPair(address: string): Promise<{ service: Client; caller: Client; calls: () => Promise<number[]>; held: Message[]; release: () => void; seqnums: bigint[] }> {
  const service = await client(address);
  await callDriver(service.bus, 'RequestName', 'su', ['org.example.Echo', 4]);
  // The bus's global sequence number of every Echo call, as the bus attaches it.
  await enableMetadata(service.bus, Attach.TIMESTAMP);
  const seqnums: bigint[] = [];
  // Calls to Later wait for release(): their replies come after a handover.
  const held: Message[] = [];
  // A method handler, so that dbus-next does not answer UnknownMethod itself.
  service.bus.addMethodHandler((m: Message) => {
    if (m.member !== 'Later') return false;
    held.push(m);
    return true;
  });
  service.bus.on('message', (m: Message) => {
    if (m.type !== 1 || m.member !== 'Echo') return;
    // The 1 MiB message of the half-way client gets an empty reply.
    if (m.signature === 'u') {
      seqnums.push(readMetadata(m).seqnum as bigint);
      service.bus.send(Message.newMethodReturn(m, 'u', [m.body[0] as number]));
    }
    else service.bus.send(Message.newMethodReturn(m, '', []));
  });
  const caller = await client(address);
  let stop = false;
  const answered: number[] = [];
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      const reply = await caller.bus.call(
        new Message({ destination: 'org.example.Echo', path: '/', interface: 'org.example.Echo', member: 'Echo', signature: 'u', body: [i] }),
      );
      answered.push(reply?.body[0] as number);
    }
  })();
  return {
    service,
    caller,
    held,
    seqnums,
    release: () => {
      for (const m of held.splice(0)) service.bus.send(Message.newMethodReturn(m, 'u', [m.body[0] as number]));
    },
    calls: async () => {
      stop = true;
      await loop;
      return answered;
    },
  };
}

(canSnapshot ? describe : describe.skip)('handovers keep every client (the addon can snapshot the bus)', () => {
  test(`${HANDOVERS} handovers in place and ${HANDOVERS} between processes`, async () => {
    const socket = join(dir, 'handover');
    let bus = await startBus([`--handover-socket=${socket}`]);
    const address = bus.address;
    const monitor = spawnTracked('dbus-monitor', ['--address', address, "type='signal',member='NameOwnerChanged',arg0namespace='org.example'"], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let monitored = '';
    monitor.stdout?.on('data', (d: Buffer) => (monitored += d.toString()));
    await until(() => monitored.includes('NameAcquired'), 10000);
    const nameChanges = (): number => monitored.split('NameOwnerChanged').length - 1;
    const echo = await echoPair(address);
    const creds = (await callDriver(echo.caller.bus, 'GetConnectionCredentials', 's', [echo.service.uniqueName])).body;
    // A python3-dbus service, called by a dbus-send loop that must never fail.
    const py = await startService(address, 'org.example.Py');
    const loop = spawnTracked('sh', ['-c',
      `n=0; while [ ! -e ${dir}/stop ]; do dbus-send --bus=${address} --print-reply --dest=org.example.Py ${TEST_PATH} ${TEST_INTERFACE}.Echo string:x >/dev/null || exit 1; n=$((n+1)); done; echo $n`],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    // GDBus: a service that owns a name, answers calls and subscribes (a
    // match rule) to the python service's Event signal.
    const gio = spawnTracked(PYTHON, [fixture('gdbus_service.py'), address, 'org.example.Gio'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let gioOut = '';
    gio.stdout?.on('data', (d: Buffer) => (gioOut += d.toString()));
    expect(await until(() => /^ready$/m.test(gioOut), 10000)).toBe(true);
    const gioUnique = gioOut.split('\n')[0];
    expect(gioUnique).toMatch(/^:1\.\d+$/);
    const gdbusCall = async (method: string, ...args: string[]): Promise<string> => {
      const r = await run('gdbus', ['call', '--address', address, '--dest', 'org.example.Gio', '--object-path', '/com/example/Gio', '--method', `com.example.Gio.${method}`, ...args], { timeoutMs: 10000 });
      expect(r.code).toBe(0);
      return r.stdout.trim();
    };
    const checkGio = async (round: number): Promise<void> => {
      expect(await gdbusCall('Ping', `round-${round}`)).toBe(`('gio:round-${round}',)`);
      expect((await callDriver(echo.caller.bus, 'GetNameOwner', 's', ['org.example.Gio'])).body[0]).toBe(gioUnique);
      const emitted = await run('dbus-send', [`--bus=${address}`, '--print-reply', '--dest=org.example.Py', TEST_PATH, `${TEST_INTERFACE}.EmitEvent`, 'string:gio', `string:round-${round}`], { timeoutMs: 10000 });
      expect(emitted.code).toBe(0);
      // The bus queued the signal to the GDBus service before the reply to
      // EmitEvent, so before the LastEvent call made after that reply.
      expect(await gdbusCall('LastEvent')).toBe(`('gio round-${round}',)`);
    };
    await checkGio(-1);
    // GDBus: gdbus monitor watches the python service's name and subscribes
    // to its signals (match rules that must cross every handover).
    const gdbus = spawnTracked('gdbus', ['monitor', '--address', address, '--dest', 'org.example.Py'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let gdbusSeen = '';
    gdbus.stdout?.on('data', (d: Buffer) => (gdbusSeen += d.toString()));
    await until(() => gdbusSeen.includes('org.example.Py'), 10000);
    // Descriptors both ways through the bus (python3-dbus), checked now and then across handovers.
    const passFds = async (round: number): Promise<void> => {
      const text = `fds after handover ${round}`;
      const r = await run(PYTHON, [fixture('fd_client.py'), address, 'org.example.Py', text], { timeoutMs: 20000 });
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n').slice(0, 2)).toEqual([text, [...text].reverse().join('')]);
    };
    // A client in the middle of SASL, and one half-way through a 1 MiB message.
    const midSasl = await RawClient.open(address);
    midSasl.write(Buffer.from([0]));
    midSasl.write(`AUTH EXTERNAL ${Buffer.from(String(process.getuid?.() ?? 0)).toString('hex')}\r\n`);
    expect(await midSasl.readLine()).toMatch(/^OK /);
    const halfWay = await RawClient.open(address);
    await halfWay.authenticate();
    halfWay.write(marshall({ type: 1, serial: 1, destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'Hello' }));
    await halfWay.readMessage();
    const big = marshall({ type: 1, serial: 2, destination: 'org.example.Echo', path: '/', interface: 'org.example.Echo', member: 'Echo', signature: 'ay', body: [Buffer.alloc(1 << 20, 7)] });
    halfWay.write(big.subarray(0, big.length >> 1));
    // A call nobody answers: its NoReply must come at its deadline (8 s), handovers or not.
    // A raw client: dbus-next would answer the call itself (UnknownMethod).
    const silent = await RawClient.open(address);
    await silent.authenticate();
    silent.write(marshall({ type: 1, serial: 1, destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'Hello' }));
    silent.write(marshall({ type: 1, serial: 2, destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'RequestName', signature: 'su', body: ['org.example.Silent', 4] }));
    await silent.readMessage();
    await silent.readMessage();
    const sentAt = Date.now();
    const noReply = echo.caller.bus
      .call(new Message({ destination: 'org.example.Silent', path: '/', interface: 'org.example.Silent', member: 'Never' }))
      .then(() => ({ type: 'answered', at: Date.now() }), (e: { type?: string }) => ({ type: e.type ?? 'error', at: Date.now() }));
    // The monitor has seen every name taken so far before the count starts.
    await until(() => ['Echo', 'Py', 'Gio', 'Silent'].every((n) => monitored.includes(`org.example.${n}`)), 10000);
    const before = nameChanges();
    // The bus's own serials (the driver's answers) go on from where they
    // were: a raw client asks after every handover.
    const probe = await RawClient.open(address);
    await probe.authenticate();
    let probeSerial = 0;
    const busSerials: number[] = [];
    const askBus = async (member: string): Promise<void> => {
      probeSerial += 1;
      probe.write(marshall({ type: 1, serial: probeSerial, destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member }));
      // Everything the probe gets is the bus's own (NameAcquired too), up to the answer.
      for (;;) {
        const m = await probe.readMessage(10000);
        expect(m).not.toBeNull();
        busSerials.push(m?.readUInt32LE(8) ?? 0);
        if (m?.[1] !== 4) break;
      }
    };
    await askBus('Hello');
    // Calls answered only after a handover: by dbus-next (held by the echo
    // service until the handover is over) and by python3-dbus (EchoLater,
    // announced on its Event signal, which gdbus monitor sees, answered 2 s
    // later), called by dbus-next and by dbus-send.
    let laterCalls = 0;
    const laterReplies: Array<Promise<unknown>> = [];
    const callLater = async (): Promise<() => Promise<void>> => {
      const k = laterCalls++;
      const reply = echo.caller.bus.call(
        new Message({ destination: 'org.example.Echo', path: '/', interface: 'org.example.Echo', member: 'Later', signature: 'u', body: [k] }),
      );
      laterReplies.push(reply);
      expect(await until(() => echo.held.some((m) => m.body[0] === k), 10000)).toBe(true);
      const text = `later-${k}`;
      const send = run('dbus-send', [`--bus=${address}`, '--print-reply', '--reply-timeout=60000', '--dest=org.example.Py', TEST_PATH, `${TEST_INTERFACE}.EmitEvent`, 'string:later', `string:${text}`], { timeoutMs: 10000 })
        .then(() => run('dbus-send', [`--bus=${address}`, '--print-reply', '--reply-timeout=60000', '--dest=org.example.Py', TEST_PATH, `${TEST_INTERFACE}.EchoLater`, `string:${text}`, 'uint32:2000'], { timeoutMs: 70000 }));
      expect(await until(() => gdbusSeen.includes(`('later', '${text}')`), 10000)).toBe(true);
      return async () => {
        echo.release();
        expect((await reply)?.body[0]).toBe(k);
        const r = await send;
        expect(r.code).toBe(0);
        // One reply, with the text sent.
        expect(r.stdout.split(`"${text}"`).length).toBe(2);
      };
    };
    const pids = new Set<number>();
    for (let i = 0; i < HANDOVERS; i++) {
      const later = i % 25 === 0 ? await callLater() : undefined;
      bus.child.kill('SIGUSR2');
      expect(await until(() => (bus.stderr().match(/Upgraded in place/g) ?? []).length > i, 20000)).toBe(true);
      pids.add(bus.child.pid as number);
      await askBus('GetId');
      await later?.();
      if (i % 25 === 0) {
        await passFds(i);
        await checkGio(i);
      }
    }
    for (let i = 0; i < HANDOVERS; i++) {
      const later = i % 25 === 0 ? await callLater() : undefined;
      const next = spawnTracked(daemonPath(), [`--take-over=${socket}`, `--handover-socket=${socket}`, '--print-pid'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      next.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      const pid = Number((await waitForLine(next, /^\d+$/, 30000)).trim());
      expect(pid).toBe(next.pid);
      await until(() => bus.child.exitCode !== null, 10000);
      expect(bus.child.exitCode).toBe(0);
      bus = { address, child: next, stderr: () => err };
      await askBus('GetId');
      await later?.();
      if (i % 25 === 0) {
        await passFds(HANDOVERS + i);
        await checkGio(HANDOVERS + i);
      }
      await sleep(20);
    }
    await passFds(2 * HANDOVERS);
    await checkGio(2 * HANDOVERS);
    // The GDBus service never lost its name nor its connection.
    expect(gioOut).not.toMatch(/^lost$/m);
    expect(gio.exitCode).toBeNull();
    expect(laterReplies.length).toBe(2 * Math.ceil(HANDOVERS / 25));
    // Serials of the bus's own messages never went back nor repeated.
    expect(busSerials.length).toBe(2 + 2 * HANDOVERS);
    expect(busSerials.every((s, i) => i === 0 || s > busSerials[i - 1])).toBe(true);
    probe.destroy();
    // gdbus monitor's match rules crossed over: it sees a signal emitted now.
    const emit = await run('dbus-send', [`--bus=${address}`, '--print-reply', '--dest=org.example.Py', TEST_PATH, `${TEST_INTERFACE}.EmitEvent`, 'string:after', 'string:handovers'], { timeoutMs: 10000 });
    expect(emit.code).toBe(0);
    expect(await until(() => /Event \('after', 'handovers'\)/.test(gdbusSeen), 10000)).toBe(true);
    await terminate(gdbus);
    // Nobody came or went: no NameOwnerChanged for any of the names.
    expect(nameChanges()).toBe(before);
    // The rest of the half-written message, and the end of the SASL exchange.
    halfWay.write(big.subarray(big.length >> 1));
    const bigReply = await halfWay.readMessage(10000);
    expect(bigReply).not.toBeNull();
    midSasl.write('BEGIN\r\n');
    midSasl.write(marshall({ type: 1, serial: 1, destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'Hello' }));
    expect(await midSasl.readMessage(10000)).not.toBeNull();
    const timedOut = await noReply;
    expect(timedOut.type).toBe('org.freedesktop.DBus.Error.NoReply');
    // The deadline crossed over: neither reset by a handover nor lost.
    expect(timedOut.at - sentAt).toBeGreaterThanOrEqual(7900);
    expect(timedOut.at - sentAt).toBeLessThan(11000);
    writeFileSync(join(dir, 'stop'), '');
    const loopOut = await waitForLine(loop, /^\d+$/, 30000);
    expect(Number(loopOut)).toBeGreaterThan(0);
    await py.stop();
    await terminate(gio);
    halfWay.destroy();
    midSasl.destroy();
    silent.destroy();
    const answered = await echo.calls();
    expect(answered).toEqual(answered.map((_, i) => i));
    expect(answered.length).toBeGreaterThan(HANDOVERS);
    // The global sequence number went on across every handover: never back, never repeated.
    expect(echo.seqnums.length).toBe(answered.length);
    expect(echo.seqnums.every((n, i) => typeof n === 'bigint' && (i === 0 || n > echo.seqnums[i - 1]))).toBe(true);
    expect((await callDriver(echo.caller.bus, 'GetConnectionCredentials', 's', [echo.service.uniqueName])).body).toEqual(creds);
    // Unique names continue where the first bus left off: monitor, echo service,
    // caller, python service, half-way client, silent, mid-SASL (:1.0-:1.6),
    // the serial probe, and every dbus-send of the loop took one each.
    const late = await client(address);
    expect(Number(late.uniqueName.slice(3))).toBeGreaterThan(7 + Number(loopOut));
    const send = await run('dbus-send', [`--bus=${address}`, '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.GetId'], { timeoutMs: 10000 });
    expect(send.code).toBe(0);
    await terminate(monitor);
    await terminate(bus.child);
  }, 600000);
});
