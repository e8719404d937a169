import { RunningBus, startBus } from '../helpers/bus';
import { callDriver, Client, connect } from '../helpers/client';
import { hasExited, run } from '../helpers/processes';
import { RawClient } from '../helpers/raw';

let bus: RunningBus;
let bystander: Client;

beforeAll(async () => {
  bus = await startBus();
  bystander = await connect(bus.address);
});

afterAll(async () => {
  await bystander?.close();
  await bus?.stop();
});

/** A well-formed little-endian header prefix with the given body length. */
function header(bodyLength: number, fieldsLength: number): Buffer {
  const b = Buffer.alloc(16);
  b.write('l', 0, 'latin1');
  b[1] = 1; // METHOD_CALL
  b[2] = 0;
  b[3] = 1; // protocol version
  b.writeUInt32LE(bodyLength, 4);
  b.writeUInt32LE(1, 8); // serial
  b.writeUInt32LE(fieldsLength, 12);
  return b;
}

async function busStillWorks(): Promise<void> {
  expect(hasExited(bus.process)).toBe(false);
  // The connection that was there all along still gets answers...
  const reply = await callDriver(bystander.bus, 'ListNames');
  expect(reply.body[0]).toContain(bystander.uniqueName);
  // ...and a new client can still connect and make a call.
  const r = await run('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.GetId'], {
    address: bus.address,
  });
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/string "[0-9a-f]{32}"/);
}

const afterAuth: Array<[string, () => Buffer]> = [
  ['an unknown byte order', () => Buffer.concat([Buffer.from('X'), header(0, 0).subarray(1)])],
  ['an unsupported protocol version', () => {
    const b = header(0, 0);
    b[3] = 9;
    return b;
  }],
  ['an invalid message type', () => {
    const b = header(0, 0);
    b[1] = 0;
    return b;
  }],
  ['a body longer than any message may be', () => Buffer.concat([header(0x7fffffff, 0), Buffer.alloc(16)])],
  ['a header field array that is not valid', () => Buffer.concat([header(0, 8), Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])])],
  ['random bytes', () => Buffer.from('this is not a D-Bus message, it is just text\n'.repeat(8))],
];

describe('a client that sends garbage is disconnected and nobody else notices', () => {
  test.each(afterAuth)('after authenticating: %s', async (_what, bytes) => {
    const raw = await RawClient.open(bus.address);
    try {
      await raw.authenticate();
      raw.write(bytes());
      expect(await raw.waitForClose(5000)).toBe(true);
    } finally {
      raw.destroy();
    }
    await busStillWorks();
  });

  test('during authentication: a first byte that is not NUL', async () => {
    const raw = await RawClient.open(bus.address);
    try {
      raw.write(Buffer.from([0xff, 0xfe, 0x80, 0x0d, 0x0a]));
      raw.write('AUTH EXTERNAL 30\r\n');
      expect(await raw.waitForClose(5000)).toBe(true);
    } finally {
      raw.destroy();
    }
    await busStillWorks();
  });

  test('during authentication: an endless line', async () => {
    const raw = await RawClient.open(bus.address);
    try {
      raw.write(Buffer.from([0]));
      raw.write(Buffer.alloc(64 * 1024, 'A'));
      expect(await raw.waitForClose(5000)).toBe(true);
    } finally {
      raw.destroy();
    }
    await busStillWorks();
  });

  test('during authentication: junk commands are answered with ERROR', async () => {
    const raw = await RawClient.open(bus.address);
    try {
      raw.write(Buffer.from([0]));
      raw.write(Buffer.concat([Buffer.from([0x01, 0x02, 0xfe, 0x20, 0x7f]), Buffer.from(' NOT A COMMAND\r\n')]));
      expect(await raw.readLine()).toMatch(/^ERROR\b/);
      raw.write('AUTH NO-SUCH-MECHANISM\r\n');
      expect(await raw.readLine()).toMatch(/^REJECTED\b.*\bEXTERNAL\b/);
    } finally {
      raw.destroy();
    }
    await busStillWorks();
  });

  test('a well-behaved raw client is not disconnected (control)', async () => {
    const raw = await RawClient.open(bus.address);
    try {
      await raw.authenticate();
      expect(await raw.waitForClose(500)).toBe(false);
    } finally {
      raw.destroy();
    }
  });
});
