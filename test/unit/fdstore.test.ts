import { openSync, closeSync, fstatSync, mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { FD_NAME, fdStoreEnv, LIMIT_ENV, MAX_AGE_MS, PER_MESSAGE, pushToStore, resumeFromStore, storeBarrier, takeFdStoreLimit } from '../../bridge/handover/fdstore';
import { Container, CONTROL_VERSION } from '../../bridge/handover/format';
import { log } from '../../bridge/log';
import { spawnTracked, terminateAll, waitForLine } from '../helpers/processes';
import { fixture, PYTHON } from '../helpers/service';

// What systemd's notify socket receives from the bus going into the store.
// The round trip through a real systemd is the system lane's (test/system/fdstore-check).

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-fdstore-'));
});
afterEach(async () => {
  await terminateAll();
  rmSync(dir, { recursive: true, force: true });
});

test('descriptors go to the store in messages of at most 253, each named, then a barrier', async () => {
  const socket = join(dir, 'notify');
  const fake = spawnTracked(PYTHON, [fixture('fake_fd_store.py'), socket]);
  const lines: string[] = [];
  let out = '';
  fake.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    const parts = out.split('\n');
    out = parts.pop() ?? '';
    lines.push(...parts);
  });
  await waitForLine(fake, /^bound$/);
  const fds = Array.from({ length: 2 * PER_MESSAGE + 94 }, () => openSync('/dev/null', 'r'));
  try {
    expect(pushToStore(socket, FD_NAME, fds)).toBe(0);
    expect(storeBarrier(socket, 10000)).toBe(0);
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  const { native } = await import('../../bridge/native');
  native.notify(socket, 'STOPPING=1');
  await new Promise((resolve) => fake.on('close', resolve));
  expect(lines).toEqual([
    'bound',
    `FDSTORE=1 FDNAME=${FD_NAME} 253`,
    `FDSTORE=1 FDNAME=${FD_NAME} 253`,
    `FDSTORE=1 FDNAME=${FD_NAME} 94`,
    'BARRIER=1 1',
    'STOPPING=1 0',
  ]);
});

test('a barrier nobody answers times out', () => {
  // A datagram socket nobody reads: the pipe's write end stays open in its queue.
  const socket = join(dir, 'deaf');
  const holder = spawnTracked(PYTHON, ['-c', `import socket,sys,time\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound",flush=True)\ntime.sleep(30)`, socket]);
  return waitForLine(holder, /^bound$/).then(() => {
    expect(storeBarrier(socket, 300)).toBe(110); // ETIMEDOUT
  });
});

test('the store size comes from $FDSTORE (systemd 254 and later) before our own variable, and leaves the environment', () => {
  const env: NodeJS.ProcessEnv = { FDSTORE: '64', [LIMIT_ENV]: '8192' };
  takeFdStoreLimit(env);
  expect(env).toEqual({});
  expect(fdStoreEnv()).toEqual({ [LIMIT_ENV]: '64' });
  takeFdStoreLimit({ [LIMIT_ENV]: '8192' });
  expect(fdStoreEnv()).toEqual({ [LIMIT_ENV]: '8192' });
  takeFdStoreLimit({ [LIMIT_ENV]: '0' });
  expect(fdStoreEnv()).toEqual({});
  takeFdStoreLimit({});
  expect(fdStoreEnv()).toEqual({});
});

// The rule for stale state (docs/handover.md): each refusal closes every stored descriptor.
describe('a stored bus is not resumed', () => {
  const config = '/etc/dbus-1/system.conf';
  const stored = (savedAtMs: number, configFile = config): { container: Container; fds: number[] } => {
    const fds = [openSync('/dev/null', 'r'), openSync('/dev/null', 'r')];
    const container: Container = {
      control: {
        version: CONTROL_VERSION,
        argv: ['--system'],
        options: { configFile, fork: 'never', writePidfile: false, syslog: 'config', syslogOnly: true, systemdActivation: true },
        guid: '0123456789abcdef0123456789abcdef',
        addresses: ['unix:path=/run/dbus/system_bus_socket'],
        log: { stderr: false, syslog: true, prefix: '' },
        daemonized: false,
        activation: { environment: {}, pending: [] },
        fdStore: { savedAtMs, ids: fds.map((fd) => { const st = fstatSync(fd, { bigint: true }); return `${st.dev}:${st.ino}`; }) },
      },
      native: Buffer.from('not checked before the rule refuses'),
    };
    return { container, fds };
  };
  const closed = (fd: number): boolean => {
    try {
      fstatSync(fd);
      return false;
    } catch {
      return true;
    }
  };

  let warned: string[];
  beforeEach(() => {
    warned = [];
    jest.spyOn(log, 'warn').mockImplementation((text: string) => void warned.push(text));
  });
  afterEach(() => jest.restoreAllMocks());

  test.each([
    ['saved too long ago', MAX_AGE_MS + 1000, config, /it was saved 61 s ago \(at most 60 s\)/],
    ['saved by another configuration file', 0, '/etc/dbus-1/session.conf', /it ran with \/etc\/dbus-1\/session.conf, this bus with \/etc\/dbus-1\/system.conf/],
  ])('when %s', (_why, ageMs, configFile, reason) => {
    const { container, fds } = stored(Date.now() - ageMs, configFile);
    expect(resumeFromStore({ states: [container], fds, sockets: [] }, config)).toBeUndefined();
    expect(fds.map(closed)).toEqual([true, true]);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(reason);
  });

  test('when no state decodes', () => {
    const { fds } = stored(Date.now());
    expect(resumeFromStore({ states: [new Error('not a kdbus-bridge handover state')], fds, sockets: [] }, config)).toBeUndefined();
    expect(fds.map(closed)).toEqual([true, true]);
    expect(warned).toEqual(['Not resuming the bus kept in the file descriptor store: not a kdbus-bridge handover state; starting afresh']);
  });
});
