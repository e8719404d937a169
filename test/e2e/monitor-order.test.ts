// Global order for monitors: a monitor that asked for timestamps
// (SetAttachFlags before BecomeMonitor) gets the bus's sequence number and
// timestamp on every copy, and the order of a capture across many
// connections is the bus's order; dbus-monitor --pcap keeps it.
import { Message } from 'dbus-next';
import { Attach, enableMetadata, readMetadata } from '../../bridge/client/metadata';
import { RunningBus, startBus } from '../helpers/bus';
import { callDriver, Client, connect } from '../helpers/client';
import { spawnTracked, terminate, until } from '../helpers/processes';
import { MessageType } from '../helpers/wire';

/* eslint-disable @typescript-eslint/no-var-requires */
const { unmarshall } = require('dbus-next/lib/message') as { unmarshall(b: Buffer): { sender?: string; serial: number; interface?: string } };

const SENDERS = 4;
const EACH = 50;

/** The D-Bus messages of a pcap file (DLT_DBUS), in file order. */
function pcapMessages(pcap: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const le = pcap.readUInt32LE(0) === 0xa1b2c3d4;
  let p = 24;
  while (p + 16 <= pcap.length) {
    const len = le ? pcap.readUInt32LE(p + 8) : pcap.readUInt32BE(p + 8);
    if (p + 16 + len > pcap.length) break;
    out.push(pcap.subarray(p + 16, p + 16 + len));
    p += 16 + len;
  }
  return out;
}

describe('global order for monitors', () => {
  let bus: RunningBus;
  const clients: Client[] = [];

  beforeAll(async () => {
    bus = await startBus();
  });
  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await bus.stop();
  });

  test('seqnum on every copy; dbus-monitor --pcap has the same order', async () => {
    const monitor = await connect(bus.address);
    clients.push(monitor);
    await enableMetadata(monitor.bus, Attach.TIMESTAMP);
    const seen: { key: string; seqnum: bigint; monotonicNs: bigint }[] = [];
    let otherMonitor = false;
    monitor.bus.on('message', (m: Message) => {
      if (m.member === 'BecomeMonitor') otherMonitor = true;
      if (m.interface !== 'com.example.Order') return;
      const md = readMetadata(m);
      seen.push({ key: `${m.sender} ${m.serial}`, seqnum: md.seqnum as bigint, monotonicNs: md.monotonicNs as bigint });
    });
    await callDriver(monitor.bus, 'GetId');
    await monitor.bus.call(
      new Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus.Monitoring', member: 'BecomeMonitor', signature: 'asu', body: [[], 0] }),
    );

    const dumper = spawnTracked('dbus-monitor', ['--address', bus.address, '--pcap'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    dumper.stdout?.on('data', (c: Buffer) => chunks.push(c));
    try {
      expect(await until(() => otherMonitor, 10000)).toBe(true);
      const senders: Client[] = [];
      for (let i = 0; i < SENDERS; i++) {
        const c = await connect(bus.address);
        clients.push(c);
        senders.push(c);
      }
      // Interleaved: every sender writes before any waits.
      for (let k = 0; k < EACH; k++) {
        for (const s of senders) s.bus.send(new Message({ type: MessageType.Signal, path: '/o', interface: 'com.example.Order', member: 'Tick', signature: 'u', body: [k] }));
      }
      expect(await until(() => seen.length === SENDERS * EACH, 10000)).toBe(true);
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i].seqnum).toBeGreaterThan(seen[i - 1].seqnum);
        expect(seen[i].monotonicNs).toBeGreaterThanOrEqual(seen[i - 1].monotonicNs);
      }
      const inPcap = () =>
        pcapMessages(Buffer.concat(chunks))
          .map((b) => {
            // dbus-next's unmarshall needs a body; every Tick has one.
            try {
              return unmarshall(b);
            } catch {
              return null;
            }
          })
          .filter((m): m is NonNullable<typeof m> => m !== null && m.interface === 'com.example.Order')
          .map((m) => `${m.sender} ${m.serial}`);
      expect(await until(() => inPcap().length === SENDERS * EACH, 10000)).toBe(true);
      expect(inPcap()).toEqual(seen.map((s) => s.key));
    } finally {
      await terminate(dumper);
    }
  });
});
