// What a bus holds for a client is bounded by what the client's peers have
// really sent and by the limits, never by a length field, and a sender that
// outruns its receiver is slowed down instead of losing messages.
import { readFileSync } from 'fs';
import { RunningBus, sessionLikeConfig, startBus } from '../helpers/bus';
import { callDriver, connect, DRIVER } from '../helpers/client';
import { FrameCounter, marshall } from '../helpers/frames';
import { sleep, until } from '../helpers/processes';
import { RawClient } from '../helpers/raw';

// eslint-disable-next-line @typescript-eslint/no-var-requires

const NO_REPLY_EXPECTED = 0x1;
const METHOD_CALL = 1;
const ERROR = 3;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** A raw client past Hello whose incoming messages are counted. */
async function rawClient(address: string): Promise<{ raw: RawClient; frames: FrameCounter }> {
  const raw = await RawClient.open(address);
  await raw.authenticate();
  const frames = new FrameCounter();
  // From here on only counted: RawClient would keep every byte.
  raw.socket.removeAllListeners('data');
  raw.socket.on('data', (chunk: Buffer) => frames.push(chunk));
  raw.write(marshall({ type: METHOD_CALL, serial: 1, ...DRIVER, member: 'Hello' }));
  if (!(await until(() => frames.count(2) >= 1, 5000))) throw new Error('no answer to Hello');
  return { raw, frames };
}

describe('a message announced but not sent', () => {
  let bus: RunningBus;

  beforeAll(async () => {
    bus = await startBus();
  });

  afterAll(async () => {
    await bus.stop();
  });

  test('costs the bus what arrived, not what its length field says', async () => {
    const CLIENTS = 100;
    // A valid header announcing a 30 MiB body (under max_message_size),
    // then only the first bytes of that body.
    const header = Buffer.alloc(56);
    header.write('l\x01\x00\x01', 0, 'latin1');
    header.writeUInt32LE(30 * 1024 * 1024, 4);
    header.writeUInt32LE(2, 8);
    header.writeUInt32LE(40, 12);
    Buffer.from([1, 1, 0x6f, 0, 1, 0, 0, 0, 0x2f, 0, 0, 0, 0, 0, 0, 0]).copy(header, 16); // PATH "/"
    Buffer.from([3, 1, 0x73, 0, 1, 0, 0, 0, 0x58, 0, 0, 0, 0, 0, 0, 0]).copy(header, 32); // MEMBER "X"
    Buffer.from([8, 1, 0x67, 0, 2, 0x61, 0x79, 0]).copy(header, 48); // SIGNATURE "ay"
    const partial = Buffer.concat([header, Buffer.alloc(64, 0x61)]);

    const before = rssKiB(bus.pid);
    const clients: RawClient[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const { raw } = await rawClient(bus.address);
      raw.write(partial);
      clients.push(raw);
    }
    const other = await connect(bus.address);
    expect((await callDriver(other.bus, 'GetId')).body[0]).toMatch(/^[0-9a-f]{32}$/);
    const growthKiB = rssKiB(bus.pid) - before;
    // 100 x 30 MiB announced; a bus that follows the bytes holds a few MiB.
    expect(growthKiB).toBeLessThan(32 * 1024);
    for (const c of clients) c.destroy();
    await other.close();
  });

  test('a client still authenticating holds little, however long its line', async () => {
    const before = rssKiB(bus.pid);
    const clients: RawClient[] = [];
    for (let i = 0; i < 50; i++) {
      const raw = await RawClient.open(bus.address);
      raw.write(Buffer.from([0]));
      raw.write('AUTH EXTERNAL ' + '3'.repeat(12000));
      clients.push(raw);
    }
    const other = await connect(bus.address);
    expect((await callDriver(other.bus, 'GetId')).body[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(rssKiB(bus.pid) - before).toBeLessThan(16 * 1024);
    for (const c of clients) c.destroy();
    await other.close();
  }, 120000);
});

describe('a sender flooding a receiver that does not read', () => {
  let bus: RunningBus;
  const INCOMING = 1024 * 1024;

  beforeAll(async () => {
    bus = await startBus({
      config: sessionLikeConfig(
        '{dir}',
        `<limit name="max_incoming_bytes">${INCOMING}</limit><limit name="max_outgoing_bytes">${8 * INCOMING}</limit>`,
      ),
    });
  });

  afterAll(async () => {
    await bus.stop();
  });

  test('is stopped at max_incoming_bytes, and every message arrives once the receiver reads', async () => {
    const COUNT = 300;
    const PAYLOAD = 64 * 1024;
    const sink = await rawClient(bus.address);
    sink.raw.write(
      marshall({ type: METHOD_CALL, serial: 2, ...DRIVER, member: 'RequestName', signature: 'su', body: ['org.example.Sink', 4] }),
    );
    expect(await until(() => sink.frames.count(2) >= 2, 5000)).toBe(true);
    sink.raw.socket.pause();

    const flooder = await rawClient(bus.address);
    const before = rssKiB(bus.pid);
    const message = marshall({
      type: METHOD_CALL,
      serial: 10,
      flags: NO_REPLY_EXPECTED,
      destination: 'org.example.Sink',
      path: '/org/example/Sink',
      interface: 'org.example.Sink',
      member: 'Take',
      signature: 'ay',
      body: [Buffer.alloc(PAYLOAD, 0x5a)],
    });
    for (let i = 0; i < COUNT; i++) {
      const copy = Buffer.from(message);
      copy.writeUInt32LE(10 + i, 8);
      flooder.raw.write(copy);
    }
    await sleep(2000);
    // Everybody else is still served while the flooder waits.
    const other = await connect(bus.address);
    expect((await callDriver(other.bus, 'GetId')).body[0]).toMatch(/^[0-9a-f]{32}$/);
    // The bus took in about max_incoming_bytes of the 19 MiB, not all of it.
    expect(rssKiB(bus.pid) - before).toBeLessThan(12 * 1024);
    expect(sink.frames.count(METHOD_CALL)).toBeLessThan(COUNT);

    sink.raw.socket.resume();
    await until(() => sink.frames.count(METHOD_CALL) + flooder.frames.count(ERROR) >= COUNT, 30000);
    // Delivered, every one, and nobody was told of a failure.
    expect(sink.frames.count(METHOD_CALL)).toBe(COUNT);
    expect(flooder.frames.count(ERROR)).toBe(0);
    sink.raw.destroy();
    flooder.raw.destroy();
    await other.close();
  });

  test('a client calling the bus without reading the answers is slowed, not served without bound', async () => {
    // 200 names make each ListNames answer about 8 KiB: unread, 10,000 of
    // them would be over 80 MiB.
    const owner = await rawClient(bus.address);
    for (let i = 0; i < 200; i++) {
      owner.raw.write(
        marshall({ type: METHOD_CALL, serial: 2 + i, ...DRIVER, member: 'RequestName', signature: 'su', body: [`org.example.Backpressure.Name${i}`, 4] }),
      );
    }
    expect(await until(() => owner.frames.count(2) >= 201, 10000)).toBe(true);
    const flooder = await rawClient(bus.address);
    flooder.raw.socket.pause();
    const before = rssKiB(bus.pid);
    const CALLS = 10000;
    const chunk: Buffer[] = [];
    for (let i = 0; i < CALLS; i++) {
      chunk.push(marshall({ type: METHOD_CALL, serial: 10 + i, ...DRIVER, member: 'ListNames' }));
      if (chunk.length === 1000) flooder.raw.write(Buffer.concat(chunk.splice(0)));
    }
    await sleep(3000);
    const other = await connect(bus.address);
    expect((await callDriver(other.bus, 'GetId')).body[0]).toMatch(/^[0-9a-f]{32}$/);
    // Unread answers stop near the limits (plus socket buffers).
    expect(rssKiB(bus.pid) - before).toBeLessThan(48 * 1024);
    // And once it reads, every call is answered.
    flooder.raw.socket.resume();
    expect(await until(() => flooder.frames.count(2) >= CALLS + 1, 60000)).toBe(true);
    flooder.raw.destroy();
    owner.raw.destroy();
    await other.close();
  }, 120000);
});
