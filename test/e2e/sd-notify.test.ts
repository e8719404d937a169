import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { daemonPath, sessionLikeConfig } from '../helpers/bus';
import { run } from '../helpers/processes';
import { fixture, PYTHON } from '../helpers/service';

// Debian's dbus.service is Type=notify: systemd waits for READY=1, and the
// bus must send it only once clients can connect, then RELOADING=1 and
// READY=1 around every reload, and STOPPING=1 on the way out, as dbus-daemon
// does. The fixture plays systemd's end of NOTIFY_SOCKET.

let dir: string;
let config: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-notify-'));
  config = join(dir, 'bus.conf');
  writeFileSync(config, sessionLikeConfig(dir));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test.each(['path', 'abstract'])('a bus under a service manager (%s NOTIFY_SOCKET) reports its states', async (kind) => {
  const r = await run(PYTHON, [fixture('notify_socket.py'), kind, daemonPath(), config], { timeoutMs: 60000 });
  // (The bus's own warnings may be on stderr; the states are on stdout.)
  expect(r.stdout.split('\n').filter((l) => l !== '')).toEqual([
    'READY=1',
    'client ok',
    'RELOADING=1',
    'READY=1',
    'client ok',
    'RELOADING=1',
    'READY=1',
    'client ok',
    'STOPPING=1',
    'exit 0',
  ]);
});
