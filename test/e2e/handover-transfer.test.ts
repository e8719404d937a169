import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import { CONTROL_VERSION, encodeContainer } from '../../bridge/handover/format';
import { handoverNative } from '../../bridge/handover/native-io';
import { daemonPath, sessionLikeConfig } from '../helpers/bus';
import { run, spawnTracked } from '../helpers/processes';

// The pieces a handover is made of, each against the real system calls:
// the descriptor transfer between processes, and the new program's check
// of a state it is asked to resume.

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-transfer-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a successor receives every byte and every descriptor, in order, past one message\'s limits', async () => {
  const socket = join(dir, 'h');
  const lfd = handoverNative.handoverListen(socket);
  // Another process, as a successor is: it prints the inode of each descriptor it got.
  const addon = resolve(__dirname, '..', '..', 'build', 'Release', 'kdbus_native.node');
  const receiver = spawnTracked(process.execPath, ['-e', `
    const n = require(${JSON.stringify(addon)});
    const fs = require('fs');
    const fd = n.handoverConnect(${JSON.stringify(socket)});
    const got = n.handoverReceive(fd, 20000);
    const sum = got.data.reduce((a, b) => (a + b) % 65521, 0);
    n.handoverSendWord(fd, JSON.stringify({ bytes: got.data.length, sum, inodes: got.fds.map((f) => fs.fstatSync(f).ino) }));
  `], { stdio: ['ignore', 'pipe', 'pipe'] });
  let peer = null;
  for (let i = 0; i < 200 && peer === null; i++) {
    peer = handoverNative.handoverAccept(lfd);
    if (peer === null) await new Promise((r) => setTimeout(r, 50));
  }
  expect(peer).not.toBeNull();
  expect(peer?.uid).toBe(process.getuid?.());
  // 600 descriptors (over SCM_MAX_FD) to three files, and 200 KiB (over a packet).
  const files = [0, 1, 2].map((i) => {
    const f = join(dir, `f${i}`);
    writeFileSync(f, '');
    return openSync(f, 'r');
  });
  const fds = Array.from({ length: 600 }, (_, i) => files[i % 3]);
  const data = Buffer.alloc(200 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  expect(handoverNative.handoverSend(peer!.fd, data, fds)).toBe(0);
  const word = handoverNative.handoverRecvWord(peer!.fd, 20000);
  const got = JSON.parse(word ?? '{}') as { bytes: number; sum: number; inodes: number[] };
  expect(got.bytes).toBe(data.length);
  expect(got.sum).toBe(data.reduce((a, b) => (a + b) % 65521, 0));
  expect(got.inodes).toEqual(fds.map((f) => fstatSync(f).ino));
  for (const f of [...files, peer!.fd, lfd]) closeSync(f);
});

test('the new program checks a state before the bus execs it', async () => {
  const config = join(dir, 'bus.conf');
  writeFileSync(config, sessionLikeConfig(dir));
  const state = (version: number, configFile: string) =>
    encodeContainer({
      control: {
        version,
        argv: [],
        options: { configFile, fork: 'never', writePidfile: false, syslog: 'never', syslogOnly: false, systemdActivation: false },
        guid: '0'.repeat(32),
        addresses: [],
        log: { stderr: true, syslog: false, prefix: '' },
        daemonized: false,
        activation: { environment: {}, pending: [] },
      },
      native: Buffer.alloc(0),
    });
  const check = async (buf: Buffer) => {
    const file = join(dir, 'state');
    writeFileSync(file, buf);
    return run('sh', ['-c', `exec "$0" --check-handover-state=3 3<"$1"`, daemonPath(), file], { timeoutMs: 30000 });
  };
  const newer = await check(state(CONTROL_VERSION + 1, config));
  expect(newer.code).toBe(1);
  expect(newer.stderr).toMatch(/newer than this version reads/);
  const broken = join(dir, 'broken.conf');
  writeFileSync(broken, '<busconfig><listen>');
  const canRestore = typeof (handoverNative as { restore?: unknown }).restore === 'function';
  const bad = await check(state(CONTROL_VERSION, broken));
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(canRestore ? /broken\.conf/ : /cannot restore a bus/);
  const good = await check(state(CONTROL_VERSION, config));
  expect(good.code).toBe(canRestore ? 0 : 1);
});
