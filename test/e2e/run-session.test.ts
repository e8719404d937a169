import { daemonPath } from '../helpers/bus';
import { run } from '../helpers/processes';

// dbus-run-session starts the daemon exactly as a login session would
// (`--nofork --print-address <fd> --session`), then runs one program on it.
function inSession(script: string) {
  const env = { ...process.env };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  return run('dbus-run-session', [`--dbus-daemon=${daemonPath()}`, '--', 'sh', '-c', script], { env, timeoutMs: 20000 });
}

describe('dbus-run-session with the daemon under test', () => {
  test('dbus-send ListNames lists the driver and the caller', async () => {
    const r = await inSession('dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.ListNames');
    expect(r.code).toBe(0);
    const header = r.stdout.match(/^method return .* destination=(:\S+) serial=\d+ reply_serial=\d+/m);
    expect(header).not.toBeNull();
    const names = [...r.stdout.matchAll(/string "([^"]*)"/g)].map((m) => m[1]);
    expect(names).toContain('org.freedesktop.DBus');
    expect(names).toContain(header![1]);
  });

  test('busctl --user list shows busctl itself with its pid', async () => {
    const r = await inSession('echo "pid $$"; exec busctl --user --no-pager --no-legend list');
    expect(r.code).toBe(0);
    const pid = r.stdout.match(/^pid (\d+)$/m)![1];
    // `exec` keeps the shell's pid, so busctl's row carries the pid printed above.
    const own = r.stdout.split('\n').find((l) => /^:\d+\.\d+\s/.test(l) && l.split(/\s+/)[1] === pid);
    expect(own).toBeDefined();
    expect(own!.split(/\s+/)[2]).toBe('busctl');
  });

  test('gdbus GetId returns one 32-hex-digit bus id for the whole bus', async () => {
    const call = 'gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus --method org.freedesktop.DBus.GetId';
    const r = await inSession(`${call} && ${call}`);
    expect(r.code).toBe(0);
    const ids = [...r.stdout.matchAll(/^\('([^']*)',\)$/gm)].map((m) => m[1]);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(ids[1]).toBe(ids[0]);
  });
});
