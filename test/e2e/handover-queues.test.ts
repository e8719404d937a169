import { ChildProcess } from 'child_process';
import { randomBytes } from 'crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { native } from '../../bridge/native';
import { daemonPath, sessionLikeConfig } from '../helpers/bus';
import { DRIVER } from '../helpers/client';
import { marshall } from '../helpers/frames';
import { sleep, spawnTracked, terminate, until, waitForLine } from '../helpers/processes';
import { RawClient } from '../helpers/raw';
import { fixture, PYTHON } from '../helpers/service';

// Handing the bus over (docs/handover.md) while its queues are at their
// limits: a client half-way through a 64 MiB message, and a receiver that
// does not read with its senders stopped or told. Both kinds of handover,
// each several times, while the state stands still.

const canSnapshot = typeof (native.Bus.prototype as { freeze?: unknown }).freeze === 'function'
  && typeof (native as unknown as { restore?: unknown }).restore === 'function';
const HANDOVERS = Number(process.env.KDBUS_BRIDGE_QUEUE_HANDOVERS ?? 2);
const METHOD_CALL = 1;
const ERROR = 3;
const SIGNAL = 4;

interface Bus {
  child: ChildProcess;
  stderr: () => string;
}

/** The bus at one address, handed over in place and between processes. */
class HandedOverBus {
  address = '';
  /** How long each handover took, from asking to serving (ms). */
  readonly durations: number[] = [];
  private bus!: Bus;
  private inPlace = 0;

  constructor(private readonly config: string, private readonly socket: string) {}

  async start(): Promise<void> {
    const child = spawnTracked(daemonPath(), [`--config-file=${this.config}`, '--print-address', '--nofork', `--handover-socket=${this.socket}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.bus = { child, stderr: capture(child) };
    this.address = (await waitForLine(child, /^unix:/)).trim();
    child.stdout?.resume();
  }

  async inPlaceUpgrade(): Promise<void> {
    const at = Date.now();
    this.bus.child.kill('SIGUSR2');
    this.inPlace += 1;
    expect(await until(() => (this.bus.stderr().match(/Upgraded in place/g) ?? []).length >= this.inPlace, 60000)).toBe(true);
    this.durations.push(Date.now() - at);
  }

  async takeOver(): Promise<void> {
    const at = Date.now();
    const next = spawnTracked(daemonPath(), [`--take-over=${this.socket}`, `--handover-socket=${this.socket}`, '--print-pid'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr = capture(next);
    expect(Number((await waitForLine(next, /^\d+$/, 60000)).trim())).toBe(next.pid);
    const old = this.bus.child;
    expect(await until(() => old.exitCode !== null, 10000)).toBe(true);
    expect(old.exitCode).toBe(0);
    this.bus = { child: next, stderr };
    this.inPlace = 0;
    this.durations.push(Date.now() - at);
  }

  /** `count` handovers of each kind, alternating. */
  async handovers(count: number, between?: () => Promise<void>): Promise<void> {
    for (let i = 0; i < count; i++) {
      await this.inPlaceUpgrade();
      await between?.();
      await this.takeOver();
      await between?.();
    }
  }

  async stop(): Promise<void> {
    await terminate(this.bus.child);
  }
}

function capture(child: ChildProcess): () => string {
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return () => err;
}

/**
 * A client that keeps whole messages as they come, without copying what it
 * holds on every read (a 64 MiB message arrives in thousands of reads).
 */
class Reader {
  readonly messages: Buffer[] = [];
  private chunks: Buffer[] = [];
  private held = 0;
  private need = 0;

  constructor(readonly raw: RawClient) {
    // What RawClient read before (the answers to authentication) is spent.
    raw.socket.removeAllListeners('data');
    raw.socket.on('data', (chunk: Buffer) => this.push(chunk));
  }

  private push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.held += chunk.length;
    for (;;) {
      if (this.need === 0) {
        if (this.held < 16) return;
        const head = this.take(16, false);
        const fields = head.readUInt32LE(12);
        this.need = 16 + Math.ceil(fields / 8) * 8 + head.readUInt32LE(4);
      }
      if (this.held < this.need) return;
      this.messages.push(this.take(this.need, true));
      this.need = 0;
    }
  }

  /** The first n bytes held; consumed when `consume`. */
  private take(n: number, consume: boolean): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [all];
    const out = all.subarray(0, n);
    if (consume) {
      this.chunks = all.length > n ? [all.subarray(n)] : [];
      this.held -= n;
    }
    return out;
  }

  write(data: Buffer): void {
    this.raw.write(data);
  }

  pause(): void {
    this.raw.socket.pause();
  }

  resume(): void {
    this.raw.socket.resume();
  }

  async next(timeoutMs: number): Promise<Buffer> {
    const at = this.messages.length;
    if (!(await until(() => this.messages.length > at, timeoutMs))) throw new Error('no message came');
    return this.messages[at];
  }
}

/** A raw client past Hello (and owning `name`, when given). */
async function reader(address: string, name?: string): Promise<Reader> {
  const raw = await RawClient.open(address);
  await raw.authenticate();
  const r = new Reader(raw);
  // The answer to Hello and NameAcquired; with a name, NameAcquired and the answer.
  r.write(marshall({ type: METHOD_CALL, serial: 1, ...DRIVER, member: 'Hello' }));
  expect(await until(() => r.messages.length >= 2, 10000)).toBe(true);
  if (name !== undefined) {
    r.write(marshall({ type: METHOD_CALL, serial: 2, ...DRIVER, member: 'RequestName', signature: 'su', body: [name, 4] }));
    expect(await until(() => r.messages.length >= 4, 10000)).toBe(true);
  }
  expect(r.messages.length).toBe(name === undefined ? 2 : 4);
  return r;
}

function type(m: Buffer): number {
  return m[1];
}

/** REPLY_SERIAL of an answer (header field 5). */
function replySerial(m: Buffer): number {
  const end = 16 + m.readUInt32LE(12);
  for (let at = 16; at < end; at = (at + 7) & ~7) {
    const code = m[at];
    const sigLen = m[at + 1];
    let v = at + 2 + sigLen + 1;
    const sig = m.toString('latin1', at + 2, at + 2 + sigLen);
    if (sig === 'u') {
      v = (v + 3) & ~3;
      if (code === 5) return m.readUInt32LE(v);
      at = v + 4;
    } else if (sig === 's' || sig === 'o') {
      v = (v + 3) & ~3;
      at = v + 4 + m.readUInt32LE(v) + 1;
    } else if (sig === 'g') {
      at = v + 1 + m[v] + 1;
    } else {
      throw new Error(`header field of signature ${sig}`);
    }
  }
  return 0;
}

/** The body of a message (what follows the padded header). */
function body(m: Buffer): Buffer {
  return m.subarray(m.length - m.readUInt32LE(4));
}

/** Node's socket has handed the kernel everything it was given. */
function flushed(r: Reader): boolean {
  return r.raw.socket.writableLength === 0;
}

/**
 * Waits until `value` has stayed the same for `quietMs`: the bus has taken
 * all it is going to take.
 */
async function settled(value: () => number, quietMs: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = value();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return now;
    }
  }
  throw new Error('never settled');
}

/**
 * A message whose body is one byte array: dbus-next marshals the header (it
 * would take minutes over 64 MiB byte by byte), the array is appended.
 */
function withByteArray(fields: Record<string, unknown>, bytes: Buffer): Buffer {
  const empty = marshall({ ...fields, signature: 'ay', body: [Buffer.alloc(0)] });
  const header = empty.subarray(0, empty.length - 4);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(bytes.length);
  const message = Buffer.concat([header, length, bytes]);
  message.writeUInt32LE(4 + bytes.length, 4);
  return message;
}

let dir: string;
const open: Array<{ destroy(): void }> = [];
const buses: HandedOverBus[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-handover-queues-'));
});

afterEach(async () => {
  for (const c of open.splice(0)) c.destroy();
  await Promise.all(buses.splice(0).map((b) => b.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function startBus(limits: string): Promise<HandedOverBus> {
  const config = join(dir, 'bus.conf');
  writeFileSync(config, sessionLikeConfig(dir, limits));
  const bus = new HandedOverBus(config, join(dir, 'handover'));
  buses.push(bus);
  await bus.start();
  return bus;
}

async function client(address: string, name?: string): Promise<Reader> {
  const r = await reader(address, name);
  open.push(r.raw);
  return r;
}

/** A receiver that reads nothing until go(): the bus holds its queue. */
interface SilentReader {
  /** Everything it received, setup answers first. */
  messages: Buffer[];
  go(): void;
}

async function silentReader(address: string, name: string): Promise<SilentReader> {
  const hello = marshall({ type: METHOD_CALL, serial: 1, ...DRIVER, member: 'Hello' });
  const request = marshall({ type: METHOD_CALL, serial: 2, ...DRIVER, member: 'RequestName', signature: 'su', body: [name, 4] });
  // The answer to Hello, NameAcquired of the unique and of the requested name, the answer to RequestName.
  const child = spawnTracked(PYTHON, [fixture('raw_reader.py'), address, '4', hello.toString('hex'), request.toString('hex')], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  open.push({ destroy: () => child.kill('SIGKILL') });
  const messages: Buffer[] = [];
  let pending = '';
  let ready = false;
  child.stdout?.on('data', (d: Buffer) => {
    const lines = (pending + d.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'ready') ready = true;
      else messages.push(Buffer.from(line, 'hex'));
    }
  });
  const stderr = capture(child);
  if (!(await until(() => ready || child.exitCode !== null, 10000)) || !ready) throw new Error(`raw_reader.py: ${stderr()}`);
  expect(messages.length).toBe(4);
  return { messages, go: () => child.stdin?.write('go\n') };
}

(canSnapshot ? describe : describe.skip)('handovers with full queues (the addon can snapshot the bus)', () => {
  test(`a 64 MiB message half sent across ${HANDOVERS} handovers of each kind arrives whole, once`, async () => {
    // The D-Bus specification's largest message is 128 MiB; dbus-daemon's
    // built-in max_message_size (32 MiB) is below this one.
    const bus = await startBus(`<limit name="max_message_size">${128 << 20}</limit>`);
    const sink = await client(bus.address, 'org.example.Big');
    const sender = await client(bus.address);
    const payload = randomBytes((64 << 20) - 256);
    const big = withByteArray({ type: SIGNAL, serial: 5, destination: 'org.example.Big', path: '/', interface: 'org.example.Big', member: 'Big' }, payload);
    expect(big.length).toBeGreaterThan(63 << 20);
    expect(big.length).toBeLessThanOrEqual(64 << 20);
    // Half of it before the first handover, then a little more after each.
    const parts = 2 + 2 * HANDOVERS;
    const cuts = [0, big.length >> 1];
    for (let i = 1; i < parts - 1; i++) cuts.push((big.length >> 1) + Math.floor(((big.length >> 1) * i) / (parts - 1)));
    cuts.push(big.length);
    let part = 0;
    const sendPart = async (): Promise<void> => {
      sender.write(big.subarray(cuts[part], cuts[part + 1]));
      part += 1;
      // The bus reads it all: nothing is sent to the sink until the last byte.
      expect(await until(() => flushed(sender), 60000)).toBe(true);
    };
    await sendPart();
    await bus.handovers(HANDOVERS, async () => {
      if (part < parts - 1) await sendPart();
    });
    expect(sink.messages.length).toBe(4);
    while (part < parts) await sendPart();
    const got = await sink.next(60000);
    expect(type(got)).toBe(SIGNAL);
    expect(got.readUInt32LE(4)).toBe(big.readUInt32LE(4));
    expect(body(got).equals(body(big))).toBe(true);
    // Once: the next thing the sink gets is what the sender sent next.
    sender.write(marshall({ type: SIGNAL, serial: 6, destination: 'org.example.Big', path: '/', interface: 'org.example.Big', member: 'After' }));
    const after = await sink.next(10000);
    expect(after.length).toBeLessThan(1024);
    expect(after.includes('After')).toBe(true);
    await sleep(200);
    expect(sink.messages.length).toBe(6);
    // A handover with 32 MiB or more of it in the state is not instant, but bounded.
    for (const ms of bus.durations) expect(ms).toBeLessThan(30000);
    process.stdout.write(`64 MiB message: handovers took ${bus.durations.join(', ')} ms\n`);
  }, 600000);

  test(`a receiver that does not read keeps its queue, its senders stay stopped or told, across ${HANDOVERS} handovers of each kind`, async () => {
    const INCOMING = 1 << 20;
    const OUTGOING = 3 << 19;
    const PAYLOAD = 64 << 10;
    // One sender is stopped (max_incoming_bytes) before it could fill the
    // queue; a second fills it to max_outgoing_bytes and is told.
    const bus = await startBus(`<limit name="max_incoming_bytes">${INCOMING}</limit><limit name="max_outgoing_bytes">${OUTGOING}</limit>`);
    const slow = await silentReader(bus.address, 'org.example.Slow');
    const signal = (serial: number, seq: number): Buffer =>
      marshall({ type: SIGNAL, serial, destination: 'org.example.Slow', path: '/', interface: 'org.example.Slow', member: 'Data', signature: 'uay', body: [seq, Buffer.alloc(PAYLOAD, seq & 0xff)] });
    const stopped = await client(bus.address);
    const FLOOD = 48;
    for (let i = 0; i < FLOOD; i++) stopped.write(signal(100 + i, i));
    // Its last call is read only after all it sent before.
    stopped.write(marshall({ type: METHOD_CALL, serial: 99, ...DRIVER, member: 'GetId' }));
    const stoppedBacklog = await settled(() => stopped.raw.socket.writableLength, 1500, 60000);
    expect(stoppedBacklog).toBeGreaterThan(0);
    const told = await client(bus.address);
    const TOLD = 16;
    for (let i = 0; i < TOLD; i++) told.write(signal(200 + i, 1000 + i));
    expect(await until(() => flushed(told), 30000)).toBe(true);
    const toldErrors = (): Buffer[] => told.messages.slice(2).filter((m) => type(m) === ERROR);
    const errorsBefore = await settled(() => toldErrors().length, 1500, 60000);
    expect(errorsBefore).toBeGreaterThan(0);
    expect(errorsBefore).toBeLessThan(TOLD);
    expect(stopped.messages.length).toBe(2);

    const extra: number[] = [];
    await bus.handovers(HANDOVERS, async () => {
      // The queue is still full: one more from the told sender is refused.
      const before = told.messages.length;
      extra.push(300 + extra.length);
      told.write(signal(extra[extra.length - 1], 2000 + extra.length));
      expect(await until(() => told.messages.length > before, 10000)).toBe(true);
      expect(type(told.messages[before])).toBe(ERROR);
    });
    // The stopped sender stayed stopped: the bus took nothing more of it,
    // told it nothing, and did not answer its last call.
    expect(await settled(() => stopped.raw.socket.writableLength, 1500, 60000)).toBe(stoppedBacklog);
    expect(stopped.messages.length).toBe(2);

    slow.go();
    // Its last call is answered once all it sent before was read.
    const answered = (): number => stopped.messages.filter((m) => type(m) === 2 && replySerial(m) === 99).length;
    expect(await until(() => answered() === 1, 60000)).toBe(true);
    await sleep(500);
    // Every message either reached the receiver once, in order, or was refused
    // (its sender told) once. While the receiver catches up its queue is full
    // of the told sender's messages, so the stopped sender, read again, may be
    // told too: handover or not, that is the rule for a full queue.
    const delivered = slow.messages.slice(4).map((m) => body(m).readUInt32LE(0));
    const refusedTo = (c: Reader): Set<number> => new Set(c.messages.slice(2).filter((m) => type(m) === ERROR).map(replySerial));
    const increasing = (xs: number[]): boolean => xs.every((x, i) => i === 0 || x > xs[i - 1]);
    const fromStopped = delivered.filter((s) => s < 1000);
    const stoppedRefused = refusedTo(stopped);
    expect(increasing(fromStopped)).toBe(true);
    for (let i = 0; i < FLOOD; i++) expect([i, Number(fromStopped.includes(i)) + Number(stoppedRefused.has(100 + i))]).toEqual([i, 1]);
    expect(stopped.messages.slice(2).filter((m) => type(m) === ERROR).length).toBe(stoppedRefused.size);
    expect(answered()).toBe(1);
    // The told sender: those refused before the handovers stay refused, the
    // rest arrived in order, and every message sent while the queue was full
    // across the handovers was refused.
    const fromTold = delivered.filter((s) => s >= 1000 && s < 2000);
    expect(fromTold).toEqual([...Array(TOLD - errorsBefore).keys()].map((i) => 1000 + i));
    expect(delivered.filter((s) => s >= 2000)).toEqual([]);
    expect(told.messages.slice(2).filter((m) => type(m) === ERROR).length).toBe(errorsBefore + extra.length);
    expect([...refusedTo(told)].sort((a, b) => a - b)).toEqual([...[...Array(errorsBefore).keys()].map((i) => 200 + TOLD - errorsBefore + i), ...extra]);
    expect(delivered.length).toBe(fromStopped.length + fromTold.length);
  }, 600000);
});
