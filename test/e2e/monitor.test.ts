// The same client actions, watched by dbus-monitor and by busctl monitor on
// the bus under test and on the reference dbus-daemon: what the monitors
// show must be the same messages in the same order.
import { ChildProcess } from 'child_process';
import { RunningBus, startBus } from '../helpers/bus';
import { run, spawnTracked, terminate } from '../helpers/processes';

const REFERENCE = '/usr/bin/dbus-daemon';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Monitor {
  child: ChildProcess;
  output(): string;
}

/** `ready`: a line the monitor prints once it listens, on `stream`. */
async function startMonitor(command: string, args: string[], ready: RegExp, stream: 'stdout' | 'stderr'): Promise<Monitor> {
  const child = spawnTracked(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const deadline = Date.now() + 10000;
  while (!ready.test(stream === 'stdout' ? out : err)) {
    if (Date.now() > deadline) throw new Error(`${command} did not start: ${out}${err}`);
    await sleep(20);
  }
  return { child, output: () => out };
}

/** The same sequence of actions, one client at a time. */
async function actions(address: string): Promise<void> {
  // --session: dbus-send registers (Hello) only when it talks to a bus it knows as one.
  const send = (...args: string[]) => run('dbus-send', ['--session', ...args], { address, timeoutMs: 10000 });
  const steps: (() => Promise<unknown>)[] = [
    () => send('--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.ListNames'),
    () => send('--type=signal', '/com/example/Monitored', 'com.example.Monitored.Ping', 'string:hello', 'uint32:7'),
    () => send('--print-reply', '--dest=com.example.Nobody', '/', 'com.example.Nobody.Call'),
    () => send('--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.NoSuchMethod'),
    () =>
      send('--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.RequestName',
        'string:com.example.Monitored', 'uint32:0'),
    () => send('--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.GetNameOwner', 'string:org.freedesktop.DBus'),
  ];
  for (const step of steps) {
    await step();
    // The departure of one client is seen before the next one arrives.
    await sleep(150);
  }
}

/** Splits monitor output into messages and removes what legitimately differs between buses. */
function normalize(text: string, start: RegExp): string[] {
  const blocks: string[] = [];
  for (const line of text.split('\n')) {
    if (start.test(line) || blocks.length === 0) blocks.push(line);
    else blocks[blocks.length - 1] += '\n' + line;
  }
  return blocks
    .map((b) => {
      let out = b
        .replace(/time=\d+\.\d+ /g, '')
        .replace(/(Timestamp|Monotonic|Realtime)=("[^"]*"|\S+)/g, '$1=*')
        .replace(/"[0-9a-f]{32}"/g, '"<id>"');
      // Serials the bus chooses for its own messages are its business.
      if (/sender=org\.freedesktop\.DBus\b|Sender=org\.freedesktop\.DBus\b/.test(out)) {
        out = out.replace(/(^|[ ;])serial=\d+/g, '$1serial=*').replace(/Cookie=\d+/g, 'Cookie=*');
      }
      return out.trimEnd();
    })
    .filter((b) => b.trim() !== '');
}

async function record(daemon: string | undefined, tool: 'dbus-monitor' | 'busctl'): Promise<string[]> {
  const bus: RunningBus = await startBus(daemon ? { daemon } : {});
  try {
    const monitor =
      tool === 'dbus-monitor'
        ? await startMonitor('dbus-monitor', ['--address', bus.address], /member=NameLost/, 'stdout')
        : await startMonitor('busctl', ['monitor', `--address=${bus.address}`], /Monitoring bus message stream/, 'stderr');
    await sleep(200);
    await actions(bus.address);
    await sleep(300);
    await terminate(monitor.child);
    return tool === 'dbus-monitor'
      ? normalize(monitor.output(), /^(signal|method call|method return|error) /)
      : normalize(monitor.output(), /^‣ /);
  } finally {
    await bus.stop();
  }
}

describe('monitoring shows what dbus-daemon shows', () => {
  test.each(['dbus-monitor', 'busctl'] as const)('%s: same messages in the same order', async (tool) => {
    const ours = await record(undefined, tool);
    const reference = await record(REFERENCE, tool);
    expect(ours.length).toBeGreaterThan(20);
    expect(ours).toEqual(reference);
  });
});
