// At the process's fd limit the bus neither spins nor leaves new clients
// hanging, and it accepts clients again once some have gone.
import { readdirSync, readFileSync } from 'fs';
import { RunningBus, sessionLikeConfig, startBus } from '../helpers/bus';
import { callDriver, connect } from '../helpers/client';
import { sleep } from '../helpers/processes';
import { RawClient } from '../helpers/raw';

// The bus may raise its own soft limit to the hard one, and as root (with
// CAP_SYS_RESOURCE) the hard one too: both are fixed and the capability gone.
const FD_LIMIT = 96;

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

describe('out of file descriptors', () => {
  let bus: RunningBus;

  beforeAll(async () => {
    bus = await startBus({
      config: sessionLikeConfig('{dir}', '<limit name="max_incomplete_connections">1000</limit>'),
      wrapper: ['prlimit', `--nofile=${FD_LIMIT}:${FD_LIMIT}`, 'setpriv', '--bounding-set=-sys_resource', '--inh-caps=-sys_resource', '--'],
    });
  });

  afterAll(async () => {
    await bus.stop();
  });

  // dbus-daemon handles its limit otherwise (it does not keep every client it
  // accepted open to the limit), so these checks are kdbus-bridge's own.
  const bridgeOnly = process.env.KDBUS_BRIDGE_TEST_DAEMON === undefined ? test : test.skip;
  bridgeOnly('the bus stays idle, refuses who it cannot take, and serves again once fds are free', async () => {
    const clients: RawClient[] = [];
    // More clients than the bus has fds left.
    const wanted = FD_LIMIT - openFds(bus.pid) + 20;
    for (let i = 0; i < wanted; i++) {
      const raw = await RawClient.open(bus.address);
      await raw.authenticate().catch(() => undefined);
      clients.push(raw);
    }
    await sleep(1000);
    expect(openFds(bus.pid)).toBeGreaterThanOrEqual(FD_LIMIT - 2);

    // Idle at the limit: a bus that keeps waking up for a listener it cannot
    // accept from burns a whole core.
    const ticksPerSecond = 100;
    const before = cpuTicks(bus.pid);
    await sleep(2000);
    const busySeconds = (cpuTicks(bus.pid) - before) / ticksPerSecond;
    expect(busySeconds).toBeLessThan(0.3);

    // Those the bus could not take are not left waiting for ever.
    const late = await RawClient.open(bus.address);
    late.write(Buffer.from([0]));
    late.write(`AUTH EXTERNAL ${Buffer.from(String(process.getuid ? process.getuid() : 0), 'ascii').toString('hex')}\r\n`);
    const refused = await late.waitForClose(5000);
    late.destroy();

    // Room again: a real client connects and is served.
    for (const c of clients.splice(0, 30)) c.destroy();
    await sleep(500);
    const other = await connect(bus.address);
    expect((await callDriver(other.bus, 'GetId')).body[0]).toMatch(/^[0-9a-f]{32}$/);
    await other.close();
    for (const c of clients) c.destroy();
    expect(refused).toBe(true);
  });
});
