// org.kdbusbridge.Bus1 metadata: what the bus attaches to messages for the
// receivers that asked (SetAttachFlags), read from dbus-next (the package's
// reader) and GDBus (g_dbus_message_get_header), and what
// GetConnectionMetadata and GetConnectionCredentials answer.
import { Message } from 'dbus-next';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Attach, enableMetadata, readMetadata } from '../../bridge/client/metadata';
import { RunningBus, startBus } from '../helpers/bus';
import { callDriver, callError, clientsPerTest } from '../helpers/client';
import { run, spawnTracked, terminate, until, waitForLine } from '../helpers/processes';
import { fixture, PYTHON } from '../helpers/service';
import { encodeMessage, Field, MessageType } from '../helpers/wire';

const BUS1 = 'org.kdbusbridge.Bus1';
const DRIVER = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus' };
const ALL = Object.values(Attach).reduce((a, b) => a | b, 0);

// A python3-dbus sender that owns a name and sends com.example.Meta.Hello to
// the given destination, then waits.
const PY_SENDER = [
  'import sys, dbus, dbus.lowlevel',
  'b = dbus.bus.BusConnection(sys.argv[1])',
  'b.request_name("com.example.MetaSender", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)',
  'm = dbus.lowlevel.SignalMessage("/com/example/Meta", "com.example.Meta", "Hello")',
  'm.set_destination(sys.argv[2])',
  'b.send_message(m)',
  'b.flush()',
  'print("sent", b.get_unique_name(), flush=True)',
  'sys.stdin.read()',
].join('\n');

describe('metadata attached by the bus', () => {
  let bus: RunningBus;
  const client = clientsPerTest(() => bus.address);

  beforeAll(async () => {
    bus = await startBus();
  });
  afterAll(async () => {
    await bus.stop();
  });

  async function fromPython(destination: string, body: (pid: number) => Promise<void>): Promise<void> {
    const py = spawnTracked(PYTHON, ['-c', PY_SENDER, bus.address, destination], { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      await waitForLine(py, /^sent /);
      await body(py.pid as number);
    } finally {
      py.stdin?.end();
      await terminate(py);
    }
  }

  test('dbus-next: every supported item, about a python3-dbus sender', async () => {
    const receiver = await client();
    const got: Message[] = [];
    receiver.bus.on('message', (m: Message) => {
      if (m.interface === 'com.example.Meta') got.push(m);
    });
    await enableMetadata(receiver.bus, ALL);
    const before = BigInt(Date.now()) * 1000000n;
    await fromPython(receiver.uniqueName, async (pid) => {
      expect(await until(() => got.length === 1, 5000)).toBe(true);
      const md = readMetadata(got[0]);
      expect(md.uid).toBe(process.getuid?.());
      expect(md.gid).toBe(process.getgid?.());
      expect(md.pid).toBe(pid);
      expect(md.tid).toBe(0);
      expect(md.ppid).toBe(process.pid);
      expect(md.groups).toContain(process.getgid?.());
      expect(md.names).toEqual(['com.example.MetaSender']);
      expect(md.comm).toMatch(/^python3/);
      expect(md.exe).toMatch(/python3/);
      expect(md.cmdline?.slice(0, 2)).toEqual([PYTHON, '-c']);
      expect(typeof md.cgroup).toBe('string');
      expect(md.seqnum).toBeGreaterThan(0n);
      expect(md.realtimeNs).toBeGreaterThanOrEqual(before);
      expect(md.monotonicNs).toBeGreaterThan(0n);
    });
  });

  test('only what was asked for, and the sequence number grows', async () => {
    const receiver = await client();
    const sender = await client();
    const got: Message[] = [];
    receiver.bus.on('message', (m: Message) => {
      if (m.interface === 'com.example.Meta') got.push(m);
    });
    await enableMetadata(receiver.bus, Attach.TIMESTAMP | Attach.CREDS);
    for (let i = 0; i < 2; i++) sender.bus.send(new Message({ type: MessageType.Signal, destination: receiver.uniqueName, path: '/a', interface: 'com.example.Meta', member: 'Hello' }));
    expect(await until(() => got.length === 2, 5000)).toBe(true);
    const [a, b] = got.map(readMetadata);
    expect(Object.keys(a).sort()).toEqual(['gid', 'monotonicNs', 'realtimeNs', 'seqnum', 'uid']);
    expect(b.seqnum as bigint).toBeGreaterThan(a.seqnum as bigint);
  });

  test('fields a sender writes itself are dropped: they cannot be forged', async () => {
    const receiver = await client();
    const plain = await client();
    const sender = await client();
    const got: Message[] = [];
    receiver.bus.on('message', (m: Message) => {
      if (m.interface === 'com.example.Meta') got.push(m);
    });
    await enableMetadata(receiver.bus, Attach.CREDS);
    // The plain receiver reads headers too but asked for nothing.
    await enableMetadata(plain.bus, 0);
    const plainGot: Message[] = [];
    plain.bus.on('message', (m: Message) => {
      if (m.interface === 'com.example.Meta') plainGot.push(m);
    });
    for (const dest of [receiver.uniqueName, plain.uniqueName]) {
      const stream = (sender.bus as unknown as { _connection: { stream: NodeJS.WritableStream } })._connection.stream;
      stream.write(
        encodeMessage({
          type: MessageType.Signal,
          serial: sender.bus.newSerial(),
          fields: [
            [Field.Path, 'o', '/a'],
            [Field.Interface, 's', 'com.example.Meta'],
            [Field.Member, 's', 'Forged'],
            [Field.Destination, 's', dest],
            [0xa2, '(uu)', [4242, 4242]],
            [0xa7, 's', 'forged'],
          ],
        }),
      );
    }
    await callDriver(sender.bus, 'GetId');
    expect(await until(() => got.length === 1 && plainGot.length === 1, 5000)).toBe(true);
    expect(readMetadata(got[0])).toEqual({ uid: process.getuid?.(), gid: process.getgid?.() });
    expect(readMetadata(plainGot[0])).toEqual({});
  });

  test('bits not supported yet answer NotSupported', async () => {
    const c = await client();
    for (const bit of [1 << 5, 1 << 10, 1 << 12, 1 << 13]) {
      const e = await callError(c.bus, new Message({ ...DRIVER, interface: BUS1, member: 'SetAttachFlags', signature: 'u', body: [bit] }));
      expect(e.name).toBe('org.freedesktop.DBus.Error.NotSupported');
    }
  });

  test('GDBus reads the fields with g_dbus_message_get_header', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-gdbus-'));
    try {
      const exe = join(dir, 'gdbus_metadata');
      const flags = await run('pkg-config', ['--cflags', '--libs', 'gio-2.0']);
      expect(flags.code).toBe(0);
      const cc = await run('gcc', ['-o', exe, fixture('gdbus_metadata.c'), ...flags.stdout.trim().split(/\s+/)], { timeoutMs: 60000 });
      expect(cc.stderr).toBe('');
      const g = spawnTracked(exe, [bus.address, String(Attach.CREDS | Attach.PIDS | Attach.TIMESTAMP)], { stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        const name = (await waitForLine(g, /^ready /)).trim().split(' ')[1];
        let out = '';
        g.stdout?.on('data', (d: Buffer) => (out += d.toString()));
        const exited = new Promise((done) => g.once('exit', done));
        await fromPython(name, async (pid) => {
          await exited;
          expect(out).toContain(`0xa2 (${process.getuid?.()}, ${process.getgid?.()})`);
          expect(out).toContain(`0xa3 (${pid}, 0, ${process.pid})`);
          expect(out).toMatch(/^0xa1 \(\d+, \d+, \d+\)$/m);
        });
      } finally {
        await terminate(g);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90000);

  test('GetConnectionMetadata, from dbus-next and gdbus', async () => {
    const c = await client();
    await fromPython(c.uniqueName, async (pid) => {
      const reply = await c.bus.call(
        new Message({ ...DRIVER, interface: BUS1, member: 'GetConnectionMetadata', signature: 'su', body: ['com.example.MetaSender', ALL] }),
      );
      const d = reply?.body[0] as Record<string, { value: unknown }>;
      expect(d.ProcessID.value).toBe(pid);
      expect(d.ParentProcessID.value).toBe(process.pid);
      expect(d.UnixUserID.value).toBe(process.getuid?.());
      expect(d.WellKnownNames.value).toEqual(['com.example.MetaSender']);
      expect(d.ProcessName.value).toMatch(/^python3/);
      expect(String(d.Executable.value)).toMatch(/python3/);
      expect((d.CommandLine.value as Buffer).toString().split('\0')[0]).toBe(PYTHON);
      const g = await run('gdbus', ['call', '--address', bus.address, '--dest', 'org.freedesktop.DBus', '--object-path', '/org/freedesktop/DBus', '--method', `${BUS1}.GetConnectionMetadata`, 'com.example.MetaSender', String(Attach.PIDS)]);
      expect(g.stdout).toContain(`'ProcessID': <uint32 ${pid}>`);
      expect(g.stdout).toContain(`'ParentProcessID': <uint32 ${process.pid}>`);
      // GetConnectionCredentials gains the same under the bus's own keys.
      const creds = await callDriver(c.bus, 'GetConnectionCredentials', 's', ['com.example.MetaSender']);
      const cd = creds.body[0] as Record<string, { value: unknown }>;
      expect(cd['org.kdbusbridge.ParentProcessID'].value).toBe(process.pid);
      expect(cd['org.kdbusbridge.ProcessName'].value).toMatch(/^python3/);
    });
    const missing = await callError(c.bus, new Message({ ...DRIVER, interface: BUS1, member: 'GetConnectionMetadata', signature: 'su', body: [':1.99999', 0] }));
    expect(missing.name).toBe('org.freedesktop.DBus.Error.NameHasNoOwner');
  });
});
