import { RunningBus, startBus } from '../helpers/bus';
import { addMatch, callDriver, Client, connect, DRIVER } from '../helpers/client';
import { RawClient } from '../helpers/raw';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { marshallMessage } = require('dbus-next/lib/marshall-compat');

let bus: RunningBus;
let watcher: Client;

beforeAll(async () => {
  bus = await startBus();
  watcher = await connect(bus.address);
  await addMatch(watcher.bus, "type='signal',member='NameOwnerChanged',arg0namespace='org.example'");
});

afterAll(async () => {
  await watcher?.close();
  await bus?.stop();
});

function call(serial: number, member: string, signature = '', body: unknown[] = []): Buffer {
  const [bytes] = marshallMessage({ type: 1, serial, flags: 0, ...DRIVER, member, signature, body }) as [Buffer, number[]];
  return bytes;
}

/** The owners `name` had, from the NameOwnerChanged signals the watcher got. */
function owners(name: string): string[] {
  return watcher.received
    .filter((m) => m.member === 'NameOwnerChanged' && m.body[0] === name)
    .map((m) => m.body[2] as string);
}

async function waitForRelease(name: string, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && owners(name).length < 2) await new Promise((r) => setTimeout(r, 20));
  return owners(name);
}

// The last messages of a client and its hang-up often reach the bus
// together: the bus must still see the connection go, or the names it took
// would stay owned by nobody that is there.
test('a client that sends its last messages and hangs up at once is seen to leave', async () => {
  const names: string[] = [];
  for (let i = 0; i < 20; i++) {
    const name = `org.example.Hangup${i}`;
    const raw = await RawClient.open(bus.address);
    const uid = String(process.getuid ? process.getuid() : 0);
    raw.write(Buffer.from([0]));
    raw.write(`AUTH EXTERNAL ${Buffer.from(uid, 'ascii').toString('hex')}\r\n`);
    expect(await raw.readLine()).toMatch(/^OK /);
    raw.socket.end(Buffer.concat([Buffer.from('BEGIN\r\n'), call(1, 'Hello'), call(2, 'RequestName', 'su', [name, 0])]));
    names.push(name);
  }
  for (const name of names) {
    // Owned for a moment (the RequestName was carried out), then released.
    expect(await waitForRelease(name, 5000)).toEqual([expect.stringMatching(/^:1\./), '']);
  }
  const reply = await callDriver(watcher.bus, 'ListNames');
  expect((reply.body[0] as string[]).filter((n) => n.startsWith('org.example.Hangup'))).toEqual([]);
});
