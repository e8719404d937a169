import { ChildProcess } from 'child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { daemonPath, sessionLikeConfig } from '../helpers/bus';
import { run, spawnTracked, terminate, until, waitForLine } from '../helpers/processes';
import { fixture } from '../helpers/service';

// The launcher (bin/kdbus-bridge) binds and prints the address itself when a
// start plan from an earlier start with the same, unchanged configuration
// allows it, then execs Node.js. Each bus here is held at the very start of
// its Node.js process (test/fixtures/hold-node.js) until the test lets it
// go: what the bus printed by then, the launcher printed.

const ADDRESS = /^unix:path=[^,]+,guid=[0-9a-f]{32}$/;

interface Start {
  child: ChildProcess;
  /** What was on standard output when Node.js began (before any of its code ran). */
  printedBeforeNode: string;
  /** Everything on standard output, read after the bus was let go. */
  output(): string;
  stderr(): string;
  release(): void;
}

let dir: string;
let cache: string;
let configFile: string;
let runs = 0;

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, KDBUS_BRIDGE_CACHE_DIR: cache, ...extra };
}

/** `inherit`: a descriptor the bus gets as its fd 3, not close-on-exec, as from a careless parent. */
async function start(args: string[], extraEnv: NodeJS.ProcessEnv = {}, inherit?: number): Promise<Start> {
  const n = ++runs;
  const started = join(dir, `started-${n}`);
  const gate = join(dir, `gate-${n}`);
  const out = join(dir, `out-${n}`);
  // A file, not a pipe: once Node.js has started, what the launcher wrote is in it.
  const outFd = openSync(out, 'w');
  let stderr = '';
  const child = spawnTracked(daemonPath(), args, {
    stdio: ['ignore', outFd, 'pipe', ...(inherit === undefined ? [] : [inherit])],
    env: env({
      NODE_OPTIONS: `--require ${fixture('hold-node.js')}`,
      KDBUS_BRIDGE_TEST_STARTED: started,
      KDBUS_BRIDGE_TEST_GATE: gate,
      ...extraEnv,
    }),
  });
  closeSync(outFd);
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const ok = await until(() => existsSync(started) || child.exitCode !== null, 30000);
  if (!ok) throw new Error('the bus never got to Node.js');
  return {
    child,
    printedBeforeNode: readFileSync(out, 'utf8'),
    output: () => readFileSync(out, 'utf8'),
    stderr: () => stderr,
    release: () => writeFileSync(gate, ''),
  };
}

const busArgs = (): string[] => [`--config-file=${configFile}`, '--nofork', '--print-address=1', '--print-pid=1'];

function planFiles(): string[] {
  return existsSync(cache) ? readdirSync(cache).filter((n) => n.startsWith('plan-')) : [];
}

/** A start that is let go at once and stopped once it serves: leaves a plan behind. */
async function warmUp(): Promise<void> {
  const before = planFiles().map((n) => readFileSync(join(cache, n), 'utf8')).join();
  const s = await start(busArgs());
  s.release();
  await until(() => s.output().split('\n').length >= 3, 30000);
  // The plan is written once the bus serves.
  await until(() => planFiles().length > 0 && planFiles().map((n) => readFileSync(join(cache, n), 'utf8')).join() !== before, 30000);
  await terminate(s.child);
}

async function getId(address: string): Promise<string> {
  const r = await run('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.GetId'], {
    address,
    timeoutMs: 30000,
  });
  expect(r.stderr).toBe('');
  return r.stdout;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-launcher-'));
  cache = join(dir, 'cache');
  configFile = join(dir, 'bus.conf');
  writeFileSync(configFile, sessionLikeConfig(dir));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the launcher', () => {
  test('without a plan, Node.js prints; with one, the launcher prints the same lines, and a waiting client is served', async () => {
    const cold = await start(busArgs());
    expect(cold.printedBeforeNode).toBe('');
    cold.release();
    await until(() => cold.output().split('\n').length >= 3, 30000);
    const [coldAddress, coldPid] = cold.output().split('\n');
    expect(coldAddress).toMatch(ADDRESS);
    expect(Number(coldPid)).toBe(cold.child.pid);
    await until(() => planFiles().length === 1, 30000);
    await terminate(cold.child);

    const warm = await start(busArgs());
    const [address, pid, rest] = warm.printedBeforeNode.split('\n');
    expect(address).toMatch(ADDRESS);
    expect(Number(pid)).toBe(warm.child.pid);
    expect(rest).toBe('');
    // A client connecting while Node.js is still held waits in the backlog.
    const reply = getId(address);
    warm.release();
    const text = await reply;
    expect(text).toContain(`string "${/guid=([0-9a-f]{32})/.exec(address)![1]}"`);
    // Node.js did not print a second time.
    expect(warm.output()).toBe(`${address}\n${pid}\n`);
    await terminate(warm.child);
    expect(existsSync(/^unix:path=([^,]+)/.exec(address)![1])).toBe(false);
  });

  test('a changed configuration file takes the slow path and its error is reported before any address', async () => {
    await warmUp();
    writeFileSync(configFile, sessionLikeConfig(dir, '  <limit name="no_such_limit">1</limit>'));
    const s = await start(busArgs());
    expect(s.printedBeforeNode).toBe('');
    s.release();
    await new Promise((r) => s.child.once('exit', r));
    expect(s.child.exitCode).toBe(1);
    expect(s.output()).toBe('');
    expect(s.stderr()).toContain(`${configFile}:`);
  });

  test('a file added to an included directory takes the slow path', async () => {
    const drop = join(dir, 'bus.d');
    mkdirSync(drop);
    writeFileSync(configFile, sessionLikeConfig(dir, `  <includedir>${drop}</includedir>`));
    await warmUp();
    const warm = await start(busArgs());
    expect(warm.printedBeforeNode).toMatch(/^unix:path=/);
    warm.release();
    await terminate(warm.child);

    writeFileSync(join(drop, 'more.conf'), '<busconfig><listen>unix:tmpdir=/nonexistent-dir-for-this-test</listen></busconfig>');
    const s = await start(busArgs());
    expect(s.printedBeforeNode).toBe('');
    s.release();
    await terminate(s.child);
  });

  test.each([
    ['group-writable', (f: string) => chmodSync(f, 0o620)],
    ['owned by someone else', (f: string) => chownSync(f, 65534, 65534)],
    ['garbage', (f: string) => writeFileSync(f, 'kdbus-bridge start plan 1\nlisten unix%3apath%3d/x\nend\n')],
  ])('a plan that is %s is ignored', async (_what, spoil) => {
    if (_what === 'owned by someone else' && process.geteuid?.() !== 0) return;
    await warmUp();
    const [plan] = planFiles();
    spoil(join(cache, plan));
    const s = await start(busArgs());
    expect(s.printedBeforeNode).toBe('');
    s.release();
    await until(() => s.output().split('\n').length >= 3, 30000);
    expect(s.output().split('\n')[0]).toMatch(ADDRESS);
    await terminate(s.child);
  });

  test('a bus stopped before Node.js handles signals, or failing before it serves, leaves no socket file', async () => {
    await warmUp();
    const killed = await start(busArgs());
    const killedPath = /^unix:path=([^,]+)/.exec(killed.printedBeforeNode)![1];
    expect(existsSync(killedPath)).toBe(true);
    // Held before any of the bus's code ran: SIGTERM's default action ends it.
    killed.child.kill('SIGTERM');
    await until(() => killed.child.exitCode !== null || killed.child.signalCode !== null, 30000);
    expect(killed.child.signalCode).toBe('SIGTERM');
    expect(await until(() => !existsSync(killedPath), 30000)).toBe(true);

    // The bus failing after the launcher printed (here: what it was handed
    // is garbled) exits with the error and removes the socket too.
    const failed = await start(busArgs(), { NODE_OPTIONS: `--require ${fixture('hold-node.js')} --require ${fixture('spoil-handoff.js')}` });
    const failedPath = /^unix:path=([^,]+)/.exec(failed.printedBeforeNode)![1];
    failed.release();
    await until(() => failed.child.exitCode !== null, 30000);
    expect(failed.child.exitCode).toBe(1);
    expect(failed.stderr()).toContain('Malformed KDBUS_BRIDGE_LISTENING');
    expect(await until(() => !existsSync(failedPath), 30000)).toBe(true);
  });

  test('activated services inherit neither the hand-over variable nor the sockets', async () => {
    const services = join(dir, 'services');
    mkdirSync(services);
    const probe = join(dir, 'probe');
    writeFileSync(
      join(services, 'com.example.Probe.service'),
      // Exits 1: a service that exits 0 may have daemonized, and the bus
      // (as dbus-daemon) would wait for its name until the timeout.
      `[D-BUS Service]\nName=com.example.Probe\nExec=/bin/sh -c 'env > ${probe}.env; ls -l /proc/self/fd > ${probe}.fds; exit 1'\n`,
    );
    writeFileSync(configFile, sessionLikeConfig(dir, `  <servicedir>${services}</servicedir>`));
    await warmUp();
    const inherited = openSync(join(dir, 'inherited'), 'w');
    const s = await start(busArgs(), {}, inherited);
    closeSync(inherited);
    const address = s.printedBeforeNode.split('\n')[0];
    expect(address).toMatch(ADDRESS);
    s.release();
    const reply = await run('dbus-send', ['--session', '--print-reply', '--dest=com.example.Probe', '/', 'com.example.Probe.Ping'], { address });
    expect(reply.stderr).toContain('org.freedesktop.DBus.Error.Spawn.ChildExited');
    expect(readFileSync(`${probe}.env`, 'utf8')).not.toContain('KDBUS_BRIDGE_LISTENING');
    const socketPath = /^unix:path=([^,]+)/.exec(address)![1];
    const inode = (await run('sh', ['-c', `ls -l /proc/${s.child.pid}/fd`])).stdout;
    expect(inode).toContain('socket:');
    // The service's descriptors are its standard ones (and ls's directory):
    // none of the launcher's, nor the one the bus itself inherited.
    expect(readFileSync(`${probe}.fds`, 'utf8')).not.toContain(join(dir, 'inherited'));
    const fds = readFileSync(`${probe}.fds`, 'utf8')
      .split('\n')
      .map((l) => /\s(\d+) -> /.exec(l)?.[1])
      .filter((fd): fd is string => fd !== undefined)
      .map(Number);
    expect(Math.max(...fds)).toBeLessThanOrEqual(3);
    expect(socketPath).toBeTruthy();
    await terminate(s.child);
  });

  test('dbus-run-session --dbus-daemon=bin/kdbus-bridge -- true, cold and warm', async () => {
    const session = join(dir, 'session.conf');
    writeFileSync(session, sessionLikeConfig(dir));
    const wrapperEnv = env();
    delete wrapperEnv.DBUS_SESSION_BUS_ADDRESS;
    for (let i = 0; i < 2; i++) {
      const r = await run('dbus-run-session', [`--config-file=${session}`, `--dbus-daemon=${daemonPath()}`, '--', 'true'], { env: wrapperEnv, timeoutMs: 30000 });
      expect(r.code).toBe(0);
      if (i === 0) await until(() => planFiles().length === 1, 30000);
    }
    const r = await run('dbus-run-session', [`--config-file=${session}`, `--dbus-daemon=${daemonPath()}`, '--', 'dbus-send', '--session', '--print-reply', '--dest=org.freedesktop.DBus', '/', 'org.freedesktop.DBus.GetId'], { env: wrapperEnv, timeoutMs: 30000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/string "[0-9a-f]{32}"/);
  });
});
