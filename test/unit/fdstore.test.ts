import { openSync, closeSync, mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { FD_NAME, fdStoreEnv, LIMIT_ENV, PER_MESSAGE, pushToStore, storeBarrier, takeFdStoreLimit } from '../../bridge/handover/fdstore';
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
