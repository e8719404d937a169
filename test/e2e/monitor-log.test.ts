import { RunningBus, sessionLikeConfig, startBus } from '../helpers/bus';
import { REFERENCE_DAEMON } from '../helpers/differential';
import { run, spawnTracked, terminate, until } from '../helpers/processes';

// A monitor's coming and going is logged as dbus-daemon logs it: "Connection
// :1.N (...) became a monitor." and, when its connection closes, "Monitoring
// connection :1.N closed."; an ordinary connection's end is not logged. The
// same actions on kdbus-bridge and on dbus-daemon give the same lines.

interface Logged {
  lines: string[];
  busPid: number;
}

async function monitorComesAndGoes(daemon?: string): Promise<Logged> {
  const bus: RunningBus = await startBus({ config: sessionLikeConfig('{dir}'), daemon });
  let stderr = '';
  bus.process.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    // An ordinary client first: were its end logged, it would come before the monitor's lines.
    const ping = await run('dbus-send', ['--print-reply', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.Peer.Ping'], {
      address: bus.address,
    });
    expect(ping.code).toBe(0);
    const monitor = spawnTracked('dbus-monitor', ['--address', bus.address], { stdio: ['ignore', 'ignore', 'ignore'] });
    expect(await until(() => stderr.includes('became a monitor.'), 10000)).toBe(true);
    await terminate(monitor);
    expect(await until(() => stderr.includes('Monitoring connection'), 10000)).toBe(true);
    return { lines: stderr.split('\n').filter((l) => /monitor/i.test(l)), busPid: bus.pid };
  } finally {
    await bus.stop();
  }
}

// What differs between two correct buses: their pids, the unique names they
// hand out, and the monitor's command line (which names the bus's address).
function normalise(logged: Logged): string[] {
  return logged.lines.map((l) =>
    l
      .replace(/^[^[\s]+\[(\d+)\]: \[session uid=0 pid=\1\] /, '')
      .replace(/:1\.\d+/g, ':1.N')
      .replace(/pid=\d+/g, 'pid=P')
      .replace(/comm="[^"]*"/g, 'comm="C"'),
  );
}

test('a monitor that closes is logged as dbus-daemon logs it', async () => {
  const tested = await monitorComesAndGoes();
  const reference = await monitorComesAndGoes(REFERENCE_DAEMON);
  expect(normalise(reference)).toEqual([
    'Connection :1.N (uid=0 pid=P comm="C") became a monitor.',
    'Monitoring connection :1.N closed.',
  ]);
  expect(normalise(tested)).toEqual(normalise(reference));
  // The line names the monitor that closed, after the bus's own prefix.
  const became = /Connection (:1\.\d+) /.exec(tested.lines[0]);
  expect(tested.lines[1]).toMatch(new RegExp(`\\[${tested.busPid}\\]: \\[session uid=0 pid=${tested.busPid}\\] Monitoring connection ${became?.[1]} closed\\.$`));
});
