// What the bus holds is charged to a uid as well as to a connection: one
// user with many connections gets at most its quota, and other users keep
// being served. The clients under quota run as other uids (root is exempt).
import { ChildProcess } from 'child_process';
import { chmodSync, readFileSync } from 'fs';
import { RunningBus, sessionLikeConfig, startBus } from '../helpers/bus';
import { callDriver, connect, DRIVER } from '../helpers/client';
import { FrameCounter, marshall } from '../helpers/frames';
import { run, sleep, spawnTracked, terminate, until, waitForLine } from '../helpers/processes';
import { RawClient, socketPath } from '../helpers/raw';
import { fixture, PYTHON } from '../helpers/service';

// eslint-disable-next-line @typescript-eslint/no-var-requires

const METHOD_CALL = 1;
const NOBODY = 65534;
const OTHER_USER = 65533;
const SCRIPT = readFileSync(fixture('quota_client.py'), 'utf8');

function asUser(uid: number): string[] {
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', PYTHON, '-'];
}

/** The quota client as `uid`; the script goes in on stdin (that uid may not reach the checkout). */
function spawnAs(uid: number, args: string[]): ChildProcess {
  const [command, ...rest] = asUser(uid);
  const child = spawnTracked(command, [...rest, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin?.end(SCRIPT);
  return child;
}

/** A root client past Hello owning `name`, whose incoming messages are counted. */
async function sink(address: string, name: string): Promise<{ raw: RawClient; frames: FrameCounter }> {
  const raw = await RawClient.open(address);
  await raw.authenticate();
  const frames = new FrameCounter();
  raw.socket.removeAllListeners('data');
  raw.socket.on('data', (chunk: Buffer) => frames.push(chunk));
  raw.write(marshall({ type: METHOD_CALL, serial: 1, ...DRIVER, member: 'Hello' }));
  raw.write(marshall({ type: METHOD_CALL, serial: 2, ...DRIVER, member: 'RequestName', signature: 'su', body: [name, 4] }));
  if (!(await until(() => frames.count(2) >= 2, 5000))) throw new Error('no answer to Hello and RequestName');
  return { raw, frames };
}

async function startQuotaBus(limits: string): Promise<RunningBus> {
  const bus = await startBus({
    config: sessionLikeConfig('{dir}', `${limits}<policy context="default"><allow user="*"/></policy>`),
  });
  // The other uids must reach the socket.
  chmodSync(bus.dir, 0o755);
  return bus;
}

const bridgeOnly = process.env.KDBUS_BRIDGE_TEST_DAEMON === undefined ? describe : describe.skip;

bridgeOnly('a user over its byte quota', () => {
  let bus: RunningBus;

  beforeAll(async () => {
    // Each connection alone could queue 64 MiB; the user together 256 KiB.
    bus = await startQuotaBus(
      '<limit name="max_incoming_bytes">67108864</limit><limit name="max_outgoing_bytes">67108864</limit>' +
        '<limit name="max_incoming_bytes_per_user">262144</limit>',
    );
  });

  afterAll(async () => {
    await bus.stop();
  });

  test('has all its connections stopped, other users are served, and nothing is lost', async () => {
    const CONNS = 3;
    const COUNT = 60;
    const SIZE = 16 * 1024;
    const INNOCENT = 8;
    const receiver = await sink(bus.address, 'org.example.Sink');
    receiver.raw.socket.pause();
    const path = socketPath(bus.address);

    // 2.8 MiB from one user: far more than its quota and the sockets hold.
    const flooder = spawnAs(NOBODY, ['flood', path, 'org.example.Sink', `${CONNS}`, `${COUNT}`, `${SIZE}`]);
    try {
      await waitForLine(flooder, /^connected/, 10000);
      const stalled = await waitForLine(flooder, /^(stalled|done) /, 20000);
      expect(stalled).toMatch(/^stalled /);

      // A new connection of the same user is not read either: its call to
      // the bus waits with the rest of that user's input.
      const sameUser = spawnAs(NOBODY, ['call', path, 'org.example.Sink', '0', '0', '1.5']);
      let sameUserSaid = '';
      sameUser.stdout?.on('data', (c: Buffer) => (sameUserSaid += c.toString()));
      expect(await until(() => sameUserSaid !== '', 10000)).toBe(true);
      expect(sameUserSaid).toBe('no answer\n');

      // Another user is read as usual, its messages to the same receiver too.
      const other = await run(asUser(OTHER_USER)[0], [...asUser(OTHER_USER).slice(1), 'call', path, 'org.example.Sink', `${INNOCENT}`, `${SIZE}`, '5'], {
        input: SCRIPT,
        timeoutMs: 15000,
      });
      expect(other.stdout.split('\n')[0]).toBe('answered');
      expect(receiver.frames.count(METHOD_CALL)).toBeLessThan(CONNS * COUNT);

      // The receiver reads: the user is read again and every message arrives.
      receiver.raw.socket.resume();
      expect(await waitForLine(flooder, /^done /, 30000)).toBe(`done ${CONNS * COUNT}`);
      expect(await until(() => sameUserSaid.includes('answered'), 10000)).toBe(true);
      expect(sameUserSaid).toBe('no answer\nanswered\n');
      expect(await until(() => receiver.frames.count(METHOD_CALL) >= CONNS * COUNT + INNOCENT, 20000)).toBe(true);
      await sleep(200);
      expect(receiver.frames.count(METHOD_CALL)).toBe(CONNS * COUNT + INNOCENT);
      await terminate(sameUser);
    } finally {
      await terminate(flooder);
      receiver.raw.destroy();
    }
  });
});

bridgeOnly('a user over its fd quota', () => {
  let bus: RunningBus;

  beforeAll(async () => {
    // Each connection alone could queue 1000 fds; the user together 8.
    bus = await startQuotaBus(
      '<limit name="max_incoming_unix_fds">1000</limit><limit name="max_outgoing_unix_fds">1000</limit>' +
        '<limit name="max_incoming_bytes">67108864</limit><limit name="max_outgoing_bytes">67108864</limit>' +
        '<limit name="max_incoming_unix_fds_per_user">8</limit>',
    );
  });

  afterAll(async () => {
    await bus.stop();
  });

  test('has all its connections stopped until its fds are taken, and nothing is lost', async () => {
    const CONNS = 3;
    const COUNT = 20;
    // Large enough that the receiver's socket fills and the bus holds the rest.
    const SIZE = 64 * 1024;
    const path = socketPath(bus.address);
    const receiver = spawnTracked(PYTHON, [fixture('quota_client.py'), 'sink', path, 'org.example.FdSink', `${CONNS * COUNT}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // The flood starts once the sink owns its name: calls to a name nobody
    // owns yet are answered at once and would never fill a queue.
    await waitForLine(receiver, /^ready/, 10000);
    const flooder = spawnAs(NOBODY, ['flood-fds', path, 'org.example.FdSink', `${CONNS}`, `${COUNT}`, `${SIZE}`]);
    try {
      await waitForLine(flooder, /^connected/, 10000);
      expect(await waitForLine(flooder, /^(stalled|done) /, 20000)).toMatch(/^stalled /);
      // Its output is kept from here on: the flooder's end is awaited first.
      let received = '';
      receiver.stdout?.on('data', (c: Buffer) => (received += c.toString()));
      receiver.stdin?.write('read\n');
      expect(await waitForLine(flooder, /^done /, 30000)).toBe(`done ${CONNS * COUNT}`);
      expect(await until(() => received.includes('\n'), 30000)).toBe(true);
      expect(received).toBe(`got ${CONNS * COUNT}\n`);
    } finally {
      await terminate(flooder);
      await terminate(receiver);
    }
  });
});

bridgeOnly('the count quotas of a user', () => {
  let bus: RunningBus;

  beforeAll(async () => {
    bus = await startQuotaBus(
      '<limit name="max_names_per_user">3</limit><limit name="max_match_rules_per_user">3</limit>' +
        '<limit name="max_replies_per_user">3</limit>',
    );
  });

  afterAll(async () => {
    await bus.stop();
  });

  test('bound names, match rules and pending replies over all its connections', async () => {
    const target = await sink(bus.address, 'org.example.Target');
    try {
      const r = await run(asUser(NOBODY)[0], [...asUser(NOBODY).slice(1), 'limits', socketPath(bus.address), 'org.example.Target'], {
        input: SCRIPT,
        timeoutMs: 20000,
      });
      const LIMITS = 'org.freedesktop.DBus.Error.LimitsExceeded';
      expect(r.stdout.trim().split('\n')).toEqual([
        'name a1 ok',
        'name a2 ok',
        'name b1 ok',
        `name b2 ${LIMITS}`,
        'match 0 ok',
        'match 1 ok',
        'match 2 ok',
        `match 3 ${LIMITS}`,
        'sync a ok',
        'sync b ok',
        `call b ${LIMITS}`,
        // The other connection gone, its share is given back.
        'after name b2 ok',
        'after match ok',
        'after call pending',
      ]);
      // The calls that were let through did reach the target.
      expect(target.frames.count(METHOD_CALL)).toBe(4);
    } finally {
      target.raw.destroy();
    }
  });

  test('leave root and other users alone', async () => {
    const client = await connect(bus.address);
    try {
      for (let i = 0; i < 5; i++) {
        expect((await callDriver(client.bus, 'RequestName', 'su', [`org.example.Root${i}`, 0])).body[0]).toBe(1);
      }
    } finally {
      await client.close();
    }
  });
});
