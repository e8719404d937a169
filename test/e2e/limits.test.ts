// A receiver that stops reading must not make the bus queue without bound:
// what waits for it is capped by max_outgoing_bytes, the sender is told
// (LimitsExceeded), and everybody else keeps being served.
import { readFileSync } from 'fs';
import { Message } from 'dbus-next';
import { RunningBus, sessionLikeConfig, startBus } from '../helpers/bus';
import { callDriver, connect } from '../helpers/client';
import { spawnTracked, terminate, waitForLine } from '../helpers/processes';
import { startService, TEST_INTERFACE, TEST_PATH } from '../helpers/service';

const PAYLOAD = 64 * 1024;
const LIMIT = 1024 * 1024;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('a receiver that does not read', () => {
  let bus: RunningBus;

  beforeAll(async () => {
    bus = await startBus({
      config: sessionLikeConfig('{dir}', `<limit name="max_outgoing_bytes">${LIMIT}</limit>`),
    });
  });

  afterAll(async () => {
    await bus.stop();
  });

  test('fills only its own bounded queue; the sender hears LimitsExceeded; the bus stays up', async () => {
    // libdbus reads its socket only while dispatching: a client that sleeps never reads.
    const stuck = spawnTracked('/usr/bin/python3', [
      '-c',
      [
        'import dbus, sys, time',
        `c = dbus.bus.BusConnection(${JSON.stringify(bus.address)})`,
        'print(c.get_unique_name(), flush=True)',
        'time.sleep(120)',
      ].join('\n'),
    ]);
    const stuckName = (await waitForLine(stuck, /^:\d+\.\d+/)).trim();
    const rssBefore = rssKiB(bus.pid);

    const sender = await connect(bus.address);
    const body = Buffer.alloc(PAYLOAD, 0x5a);
    const calls: Promise<unknown>[] = [];
    // Enough to exceed everything between the bus and the stuck client several
    // times over (socket buffers, the bus's write window, the limit itself).
    for (let i = 0; i < 120; i++) {
      calls.push(
        sender.bus
          .call(
            new Message({
              destination: stuckName,
              path: '/com/example/Flood',
              interface: 'com.example.Flood',
              member: 'Take',
              signature: 'ay',
              body: [body],
            }),
          )
          .then(
            () => 'reply',
            (e: { type?: string }) => e.type ?? String(e),
          ),
      );
    }
    const first = await Promise.race(calls);
    expect(first).toBe('org.freedesktop.DBus.Error.LimitsExceeded');

    // Others are still served, promptly.
    const other = await connect(bus.address);
    const reply = await callDriver(other.bus, 'GetId');
    expect(reply.body[0]).toMatch(/^[0-9a-f]{32}$/);

    // The bus did not take in the whole flood: far less than 120 x 64 KiB.
    expect(rssKiB(bus.pid) - rssBefore).toBeLessThan((120 * PAYLOAD) / 1024 / 2);

    await terminate(stuck);
    await other.close();
    await sender.close();
  });
});

describe('auth_timeout', () => {
  test('a client that never authenticates is disconnected', async () => {
    const bus = await startBus({
      config: sessionLikeConfig('{dir}', '<limit name="auth_timeout">1000</limit>'),
    });
    try {
      const { createConnection } = await import('net');
      const path = /unix:path=([^,]+)/.exec(bus.address)?.[1] as string;
      const started = Date.now();
      const closed = await new Promise<boolean>((resolve) => {
        const sock = createConnection(path);
        sock.on('error', () => resolve(true));
        sock.on('close', () => resolve(true));
        setTimeout(() => {
          sock.destroy();
          resolve(false);
        }, 8000);
      });
      expect(closed).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      // The bus itself is fine.
      const other = await connect(bus.address);
      expect((await callDriver(other.bus, 'GetId')).body[0]).toMatch(/^[0-9a-f]{32}$/);
      await other.close();
    } finally {
      await bus.stop();
    }
  });
});

describe('large messages to a reader', () => {
  test('several large calls in flight all reach a service that reads, and all replies return', async () => {
    const bus = await startBus({
      config: sessionLikeConfig('{dir}', '<limit name="max_message_size">134217728</limit>'),
    });
    const service = await startService(bus.address, 'com.example.Large');
    const client = await connect(bus.address);
    try {
      // More bytes in flight than the socket buffers and the bus's write
      // window hold at once, so delivery has to resume as the service reads.
      const texts = [0, 1, 2, 3, 4, 5].map((i) => String.fromCharCode(97 + i).repeat(700 * 1024));
      const replies = await Promise.all(
        texts.map((t) =>
          client.bus.call(
            new Message({
              destination: 'com.example.Large',
              path: TEST_PATH,
              interface: TEST_INTERFACE,
              member: 'Echo',
              signature: 's',
              body: [t],
            }),
          ),
        ),
      );
      expect(replies.map((r) => r?.body[0])).toEqual(texts);
    } finally {
      await client.close();
      await service.stop();
      await bus.stop();
    }
  });
});

describe('pending_fd_timeout', () => {
  // dbus-daemon keeps such a connection; kdbus-bridge does not let a client
  // pin file descriptors in the bus with a message it never finishes. Root
  // is trusted, as in dbus-daemon, so the client runs as nobody.
  const bridgeOnly = process.env.KDBUS_BRIDGE_TEST_DAEMON === undefined ? test : test.skip;
  bridgeOnly('a client holding fds for a message it never completes is disconnected', async () => {
    const bus = await startBus({
      config: sessionLikeConfig(
        '{dir}',
        '<limit name="pending_fd_timeout">1000</limit><policy context="default"><allow user="*"/></policy>',
      ),
    });
    try {
      const { chmodSync } = await import('fs');
      chmodSync(bus.dir, 0o755);
      const path = /unix:path=([^,]+)/.exec(bus.address)?.[1] as string;
      const { run } = await import('../helpers/processes');
      const { fixture, PYTHON } = await import('../helpers/service');
      // The script goes in on stdin: nobody may not be able to reach the checkout.
      const r = await run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', PYTHON, '-', path], {
        timeoutMs: 20000,
        input: readFileSync(fixture('pending_fds.py'), 'utf8'),
      });
      expect(r.stdout).toMatch(/AGREE_UNIX_FD/);
      expect(r.stdout).toMatch(/^closed /m);
      const other = await connect(bus.address);
      expect((await callDriver(other.bus, 'GetId')).body[0]).toMatch(/^[0-9a-f]{32}$/);
      await other.close();
    } finally {
      await bus.stop();
    }
  });
});
