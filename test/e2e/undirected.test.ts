import { mkdtempSync, rmSync, existsSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ChildProcess } from 'child_process';
import { RunningBus, startBus } from '../helpers/bus';
import { run, spawnTracked, terminate } from '../helpers/processes';
import { fixture, PYTHON, RunningService, startService, TEST_INTERFACE, TEST_PATH } from '../helpers/service';

// A method call that names no destination is answered by the bus itself,
// the way dbus-daemon answers it; xdg-dbus-proxy (every Flatpak app's bus)
// depends on it to fail calls to the names it hides.

const ALLOWED = 'com.example.Allowed';
const HIDDEN = 'com.example.Hidden';

let bus: RunningBus;
const services: RunningService[] = [];

beforeAll(async () => {
  bus = await startBus();
  services.push(await startService(bus.address, ALLOWED), await startService(bus.address, HIDDEN));
});

afterAll(async () => {
  await Promise.all(services.map((s) => s.stop()));
  await bus?.stop();
});

test('calls without a destination get the answers dbus-daemon gives, with no sender', async () => {
  const r = await run(PYTHON, [fixture('undirected_calls.py'), bus.address]);
  expect(r.stderr).toBe('');
  const machineId = (await run('dbus-send', ['--session', '--print-reply=literal', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.Peer.GetMachineId'], { address: bus.address })).stdout.trim();
  expect(machineId).toMatch(/^[0-9a-f]{32}$/);
  const emptyNode =
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\\n' +
    '"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\\n<node>\\n</node>\\n';
  expect(r.stdout.split('\n').filter((l) => l !== '')).toEqual([
    'return None None []',
    `return None None ['${machineId}']`,
    "error org.freedesktop.DBus.Error.UnknownMethod 'Unknown method invoked on org.freedesktop.DBus.Peer interface'",
    `return None None ['${emptyNode}']`,
    `error org.freedesktop.DBus.Error.UnknownMethod 'Method "ListNames" with signature "" on interface "org.freedesktop.DBus" doesn\\'t exist\\n'`,
    `error org.freedesktop.DBus.Error.UnknownMethod 'Method "Ping" with signature "" on interface "(null)" doesn\\'t exist\\n'`,
  ]);
});

describe('xdg-dbus-proxy --filter in front of the bus', () => {
  let dir: string;
  let proxy: ChildProcess;
  let proxyAddress: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-proxy-'));
    const socket = join(dir, 'bus');
    proxy = spawnTracked('xdg-dbus-proxy', [bus.address, socket, '--filter', `--talk=${ALLOWED}`], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25));
    expect(existsSync(socket)).toBe(true);
    proxyAddress = `unix:path=${socket}`;
  });

  afterAll(async () => {
    if (proxy) await terminate(proxy);
    rmSync(dir, { recursive: true, force: true });
  });

  // The proxy's client waits at most this long; a bus that never answers the
  // proxy's Ping makes the call end in NoReply instead of ServiceUnknown.
  const send = (...args: string[]) =>
    run('dbus-send', ['--session', '--print-reply', '--reply-timeout=10000', ...args], { address: proxyAddress });

  test('a call to an allowed name goes through', async () => {
    const r = await send(`--dest=${ALLOWED}`, TEST_PATH, `${TEST_INTERFACE}.Echo`, 'string:through');
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('string "through"');
  });

  test('a call to a filtered name fails with ServiceUnknown', async () => {
    const r = await send(`--dest=${HIDDEN}`, TEST_PATH, `${TEST_INTERFACE}.Echo`, 'string:hidden');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error org\.freedesktop\.DBus\.Error\.ServiceUnknown:/m);
  });

  test('NameHasOwner and GetNameOwner hide the filtered name', async () => {
    const has = await send('--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', `string:${HIDDEN}`);
    expect(has.stderr).toBe('');
    expect(has.stdout).toMatch(/boolean false/);
    const owner = await send('--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.GetNameOwner', `string:${HIDDEN}`);
    expect(owner.stderr).toMatch(/^Error org\.freedesktop\.DBus\.Error\.NameHasNoOwner:/m);
    const allowed = await send('--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', `string:${ALLOWED}`);
    expect(allowed.stdout).toMatch(/boolean true/);
  });
});
