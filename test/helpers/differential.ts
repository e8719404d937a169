// Two buses side by side, the one under test and the reference dbus-daemon,
// with the same configuration and the same clients, so that a test can do
// the same thing on both and compare what each client was told.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Message } from 'dbus-next';
import { RunningBus, sessionLikeConfig, startBus } from './bus';
import { Client, connect, DRIVER } from './client';
import { encodeMessage, RawMessage } from './wire';

export const REFERENCE_DAEMON = '/usr/bin/dbus-daemon';

/** A name a .service file makes activatable on both buses; its Exec fails at once. */
export const ACTIVATABLE = 'com.example.Activatable';

export interface Side {
  label: string;
  bus: RunningBus;
  clients: Client[];
}

export interface Pair {
  tested: Side;
  reference: Side;
  stop(): Promise<void>;
}

/** Starts both buses, each with `clients` connected clients; `extra` goes at the end of both configurations. */
export async function startPair(clients: number, extra = ''): Promise<Pair> {
  const shared = mkdtempSync(join(tmpdir(), 'kdbus-bridge-differential-'));
  mkdirSync(join(shared, 'services'));
  writeFileSync(join(shared, 'services', `${ACTIVATABLE}.service`), `[D-BUS Service]\nName=${ACTIVATABLE}\nExec=/bin/false\n`);
  const config = sessionLikeConfig('{dir}', `<servicedir>${join(shared, 'services')}</servicedir>\n${extra}`);
  const start = async (label: string, daemon?: string): Promise<Side> => {
    const bus = await startBus({ config, daemon });
    const side: Side = { label, bus, clients: [] };
    for (let i = 0; i < clients; i++) side.clients.push(await connect(bus.address));
    return side;
  };
  const tested = await start('kdbus-bridge');
  const reference = await start('dbus-daemon', REFERENCE_DAEMON);
  return {
    tested,
    reference,
    async stop() {
      for (const side of [tested, reference]) {
        for (const c of side.clients) await c.close().catch(() => undefined);
        await side.bus.stop();
      }
      rmSync(shared, { recursive: true, force: true });
    },
  };
}

/** What one client saw after it sent one message: replies to it, other messages, or the end of its connection. */
export interface Observed {
  replies: unknown[];
  others: unknown[];
  disconnected: boolean;
}

function streamOf(c: Client): NodeJS.WritableStream & { destroyed?: boolean } {
  return (c.bus as unknown as { _connection: { stream: NodeJS.WritableStream & { destroyed?: boolean } } })._connection.stream;
}

function closed(c: Client): boolean {
  return Boolean(streamOf(c).destroyed);
}

/**
 * Writes `msg` (its serial replaced by a fresh one) on `client`'s connection,
 * waits for a reply when `awaitReply`, then for a Ping round trip through
 * the driver, and returns what arrived in between, normalised by `normalise`.
 */
export async function observe(
  client: Client,
  msg: RawMessage,
  normalise: (m: Message) => unknown,
  awaitReply = false,
): Promise<Observed> {
  const serial = client.bus.newSerial();
  const first = client.received.length;
  streamOf(client).write(encodeMessage({ ...msg, serial }));
  if (awaitReply) {
    const deadline = Date.now() + 10000;
    while (!closed(client) && !client.received.slice(first).some((m) => Number(m.replySerial) === serial) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  let pingSerial = -1;
  let disconnected = closed(client);
  if (!disconnected) {
    const ping = new Message({ ...DRIVER, interface: 'org.freedesktop.DBus.Peer', member: 'Ping' });
    const reply = client.bus.call(ping);
    pingSerial = ping.serial as number;
    const outcome = await Promise.race([
      reply.then(() => 'replied', () => 'failed'),
      new Promise<string>((r) => (streamOf(client) as unknown as NodeJS.EventEmitter).once('close', () => r('closed'))),
      new Promise<string>((r) => setTimeout(() => r('timeout'), 10000)),
    ]);
    disconnected = outcome !== 'replied';
  }
  const got = client.received.slice(first).filter((m) => Number(m.replySerial) !== pingSerial || pingSerial < 0);
  return {
    replies: got.filter((m) => Number(m.replySerial) === serial).map(normalise),
    others: got.filter((m) => Number(m.replySerial) !== serial).map(normalise),
    disconnected,
  };
}

/**
 * A message as a comparable value: unique names become their role ("me",
 * "other", ... by index in `clients`), other unique names ":unique", the
 * bus's guid "<guid>", the bus's pid "<bus pid>"; serials are left out.
 */
export function normaliser(clients: Client[], roles: string[], busPid: number): (m: Message) => unknown {
  const names = new Map(clients.map((c, i) => [c.uniqueName, `:${roles[i] ?? i}`]));
  const value = (v: unknown): unknown => {
    if (typeof v === 'string') {
      if (names.has(v)) return names.get(v);
      if (/^:\d+\.\d+$/.test(v)) return ':unique';
      if (/^[0-9a-f]{32}$/.test(v)) return '<guid>';
      return v;
    }
    if (typeof v === 'bigint') return `${v}n`;
    if (v === busPid) return '<bus pid>';
    if (Buffer.isBuffer(v)) return `bytes:${v.toString('hex')}`;
    if (Array.isArray(v)) return v.map(value);
    if (v !== null && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) o[k] = value(x);
      return o;
    }
    return v;
  };
  return (m: Message) => {
    const out: Record<string, unknown> = { type: m.type };
    if (m.errorName) out.errorName = m.errorName;
    if (m.sender) out.sender = value(m.sender);
    if (m.path) out.path = m.path;
    if (m.interface) out.interface = m.interface;
    if (m.member) out.member = m.member;
    out.signature = m.signature ?? '';
    // An error's text is for people and differs in wording; its name is compared.
    if (!m.errorName) out.body = value(m.body ?? []);
    return out;
  };
}
