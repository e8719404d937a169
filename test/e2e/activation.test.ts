import { Message } from 'dbus-next';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { daemonPath, sessionLikeConfig } from '../helpers/bus';
import { callDriver, callError, Client, connect } from '../helpers/client';
import { run, spawnTracked, terminate, waitForLine } from '../helpers/processes';
import { fixture, PYTHON, TEST_INTERFACE, TEST_PATH } from '../helpers/service';

const NO_AUTO_START = 2;

interface ActivationBus {
  address: string;
  dir: string;
  stop(): Promise<void>;
}

/** A bus whose configuration is `body(dir)`, run with `env` added to ours. */
async function startActivationBus(
  body: (dir: string) => string,
  env: NodeJS.ProcessEnv = {},
  wrapper: string[] = [],
): Promise<ActivationBus> {
  const dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-activation-'));
  const configFile = join(dir, 'bus.conf');
  writeFileSync(configFile, sessionLikeConfig(dir, body(dir)));
  const argv = [...wrapper, daemonPath(), `--config-file=${configFile}`, '--print-address', '--nofork'];
  const child = spawnTracked(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const address = (await waitForLine(child, /^[a-z]+:.*guid=[0-9a-f]{32}/)).trim();
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    address,
    dir,
    async stop() {
      await terminate(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function serviceFile(dir: string, name: string, exec: string): void {
  writeFileSync(join(dir, `${name}.service`), `[D-BUS Service]\nName=${name}\nExec=${exec}\n`);
}

function pythonService(name: string, ...extra: string[]): string {
  return [PYTHON, fixture('activatable_service.py'), name, ...extra].join(' ');
}

function call(name: string, member: string, signature = '', body: unknown[] = [], flags = 0): Message {
  return new Message({ destination: name, path: TEST_PATH, interface: TEST_INTERFACE, member, signature, body, flags });
}

async function callValue(client: Client, message: Message): Promise<unknown> {
  const reply = await client.bus.call(message);
  if (reply === null) throw new Error('no reply');
  return reply.body[0];
}

function dbusSend(address: string, name: string, member: string, ...args: string[]) {
  return run('dbus-send', ['--session', '--print-reply', `--dest=${name}`, TEST_PATH, `${TEST_INTERFACE}.${member}`, ...args], { address });
}

describe('service activation from .service files', () => {
  let bus: ActivationBus;
  const clients: Client[] = [];

  beforeAll(async () => {
    bus = await startActivationBus((dir) => {
      const services = join(dir, 'services');
      mkdirSync(services);
      serviceFile(services, 'com.example.Activated', pythonService('com.example.Activated'));
      serviceFile(services, 'com.example.Started', pythonService('com.example.Started'));
      serviceFile(services, 'com.example.Busy', pythonService('com.example.Busy'));
      serviceFile(services, 'com.example.NoAuto', pythonService('com.example.NoAuto'));
      serviceFile(services, 'com.example.Envy', pythonService('com.example.Envy'));
      serviceFile(services, 'com.example.Quitter', pythonService('com.example.Quitter', '--exit-before-name', '3'));
      serviceFile(services, 'com.example.Missing', join(dir, 'no-such-program'));
      // Unusable files are skipped, not fatal.
      writeFileSync(join(services, 'com.example.NoExec.service'), '[D-BUS Service]\nName=com.example.NoExec\n');
      writeFileSync(join(services, 'garbage.service'), 'this is not a service file\n');
      return `<servicedir>${services}</servicedir>`;
    });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await bus?.stop();
  });

  async function client(): Promise<Client> {
    const c = await connect(bus.address);
    clients.push(c);
    return c;
  }

  test('ListActivatableNames lists the bus and every usable service file', async () => {
    const c = await client();
    const names = (await callDriver(c.bus, 'ListActivatableNames')).body[0] as string[];
    expect(names).toContain('org.freedesktop.DBus');
    for (const n of ['com.example.Activated', 'com.example.Quitter', 'com.example.Missing']) expect(names).toContain(n);
    expect(names).not.toContain('com.example.NoExec');
  });

  test('a plain dbus-send call starts the service and gets its answer', async () => {
    const r = await dbusSend(bus.address, 'com.example.Activated', 'Echo', 'string:started for me');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^\s+string "started for me"$/m);
    const c = await client();
    expect((await callDriver(c.bus, 'NameHasOwner', 's', ['com.example.Activated'])).body[0]).toBe(true);
    // The environment a bus gives the services it starts.
    expect(await callValue(c, call('com.example.Activated', 'Env', 's', ['DBUS_STARTER_BUS_TYPE']))).toBe('session');
    expect(await callValue(c, call('com.example.Activated', 'Env', 's', ['DBUS_STARTER_ADDRESS']))).toBe(bus.address);
    expect(await callValue(c, call('com.example.Activated', 'Env', 's', ['DBUS_SESSION_BUS_ADDRESS']))).toBe(bus.address);
  });

  test('StartServiceByName answers SUCCESS once started, then ALREADY_RUNNING', async () => {
    const c = await client();
    expect((await callDriver(c.bus, 'StartServiceByName', 'su', ['com.example.Started', 0])).body[0]).toBe(1);
    expect((await callDriver(c.bus, 'NameHasOwner', 's', ['com.example.Started'])).body[0]).toBe(true);
    expect((await callDriver(c.bus, 'StartServiceByName', 'su', ['com.example.Started', 0])).body[0]).toBe(2);
    const unknown = await callError(
      c.bus,
      new Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'StartServiceByName', signature: 'su', body: ['com.example.Unknown', 0] }),
    );
    expect(unknown.name).toBe('org.freedesktop.DBus.Error.ServiceUnknown');
    expect(unknown.text).toBe('The name com.example.Unknown was not provided by any .service files');
  });

  test('concurrent callers are all answered by one started instance, each in its order', async () => {
    const c = await client();
    const texts = ['one', 'two', 'three', 'four', 'five'];
    const pipelined = texts.map((t) => callValue(c, call('com.example.Busy', 'Echo', 's', [t])));
    const others = [1, 2, 3].map(() => dbusSend(bus.address, 'com.example.Busy', 'Pid'));
    expect(await Promise.all(pipelined)).toEqual(texts);
    const pids = (await Promise.all(others)).map((r) => {
      expect(r.stderr).toBe('');
      return Number(r.stdout.match(/uint32 (\d+)/)![1]);
    });
    expect(new Set(pids).size).toBe(1);
    expect(await callValue(c, call('com.example.Busy', 'Pid'))).toBe(pids[0]);
    expect(await callValue(c, call('com.example.Busy', 'Calls'))).toEqual(texts);
  });

  test('a service that exits without taking its name fails every waiting caller', async () => {
    const a = await client();
    const b = await client();
    const expected = { name: 'org.freedesktop.DBus.Error.Spawn.ChildExited', text: 'Process com.example.Quitter exited with status 3' };
    const results = await Promise.all([
      callError(a.bus, call('com.example.Quitter', 'Echo', 's', ['x'])),
      callError(a.bus, call('com.example.Quitter', 'Echo', 's', ['y'])),
      callError(b.bus, call('com.example.Quitter', 'Echo', 's', ['z'])),
      callError(
        b.bus,
        new Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'StartServiceByName', signature: 'su', body: ['com.example.Quitter', 0] }),
      ),
    ]);
    for (const r of results) expect(r).toEqual(expected);
    // A later call tries again, and fails the same way.
    expect(await callError(a.bus, call('com.example.Quitter', 'Echo', 's', ['again']))).toEqual(expected);
  });

  test('a missing program fails the call with Spawn.ExecFailed', async () => {
    const r = await dbusSend(bus.address, 'com.example.Missing', 'Echo', 'string:x');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error org\.freedesktop\.DBus\.Error\.Spawn\.ExecFailed: Failed to execute program com\.example\.Missing: No such file or directory$/m);
  });

  test('NO_AUTO_START to an activatable name gets NameHasNoOwner and starts nothing', async () => {
    const c = await client();
    const err = await callError(c.bus, call('com.example.NoAuto', 'Echo', 's', ['x'], NO_AUTO_START));
    expect(err).toEqual({ name: 'org.freedesktop.DBus.Error.NameHasNoOwner', text: 'Name "com.example.NoAuto" does not exist' });
    expect((await callDriver(c.bus, 'NameHasOwner', 's', ['com.example.NoAuto'])).body[0]).toBe(false);
  });

  test('UpdateActivationEnvironment reaches services started afterwards', async () => {
    const c = await client();
    await callDriver(c.bus, 'UpdateActivationEnvironment', 'a{ss}', [{ KDBUS_BRIDGE_TEST_VAR: 'from the environment' }]);
    expect(await callValue(c, call('com.example.Envy', 'Env', 's', ['KDBUS_BRIDGE_TEST_VAR']))).toBe('from the environment');
  });
});

describe('a Debian service started from the standard session service directories', () => {
  const dconf = '/usr/bin/dconf';
  const haveDconf = existsSync(dconf) && existsSync('/usr/share/dbus-1/services/ca.desrt.dconf.service');
  const maybe = haveDconf ? test : test.skip;

  maybe('dconf write auto-starts ca.desrt.dconf', async () => {
    const home = mkdtempSync(join(tmpdir(), 'kdbus-bridge-home-'));
    const runtime = join(home, 'runtime');
    mkdirSync(runtime, { mode: 0o700 });
    const env = {
      HOME: home,
      XDG_RUNTIME_DIR: runtime,
      XDG_CONFIG_HOME: join(home, 'config'),
      XDG_DATA_HOME: join(home, 'data'),
      XDG_CACHE_HOME: join(home, 'cache'),
      XDG_DATA_DIRS: '/usr/local/share:/usr/share',
    };
    const bus = await startActivationBus(() => '<standard_session_servicedirs/>', env);
    try {
      const services = join(runtime, 'dbus-1', 'services');
      expect(statSync(services).isDirectory()).toBe(true);
      expect(statSync(services).mode & 0o777).toBe(0o700);
      const w = await run(dconf, ['write', '/org/example/key', "'v'"], { address: bus.address, env });
      expect(w.stderr).toBe('');
      expect(w.code).toBe(0);
      const r = await run(dconf, ['read', '/org/example/key'], { address: bus.address, env });
      expect(r.stdout.trim()).toBe("'v'");
      expect(existsSync(join(home, 'config', 'dconf', 'user'))).toBe(true);
      const c = await connect(bus.address);
      try {
        expect((await callDriver(c.bus, 'NameHasOwner', 's', ['ca.desrt.dconf'])).body[0]).toBe(true);
      } finally {
        await c.close();
      }
    } finally {
      // dconf-service leaves when its bus goes away.
      await bus.stop();
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('ActivatableServicesChanged', () => {
  // A dbus 1.16 addition: dbus-daemon 1.14 does not send it, so this checks only the bridge.
  const bridgeOnly = process.env.KDBUS_BRIDGE_TEST_DAEMON === undefined ? test : test.skip;
  bridgeOnly('a reload that finds a new service file announces it; one that changes nothing does not', async () => {
    const bus = await startActivationBus((dir) => {
      mkdirSync(join(dir, 'services'));
      return `<servicedir>${join(dir, 'services')}</servicedir>`;
    });
    const client = await connect(bus.address);
    try {
      await callDriver(client.bus, 'AddMatch', 's', [
        "type='signal',sender='org.freedesktop.DBus',member='ActivatableServicesChanged'",
      ]);
      const changes = () =>
        client.received.filter((m) => m.member === 'ActivatableServicesChanged' && m.sender === 'org.freedesktop.DBus').length;

      await callDriver(client.bus, 'ReloadConfig');
      await callDriver(client.bus, 'GetId');
      expect(changes()).toBe(0);

      serviceFile(join(bus.dir, 'services'), 'com.example.Appeared', '/bin/false');
      await callDriver(client.bus, 'ReloadConfig');
      await callDriver(client.bus, 'GetId');
      expect(changes()).toBe(1);
      const names = (await callDriver(client.bus, 'ListActivatableNames')).body[0] as string[];
      expect(names).toContain('com.example.Appeared');
    } finally {
      await client.close();
      await bus.stop();
    }
  });
});

describe('what a started service inherits', () => {
  let bus: ActivationBus;

  beforeAll(async () => {
    bus = await startActivationBus(
      (dir) => {
        const services = join(dir, 'services');
        mkdirSync(services);
        const limits = join(dir, 'limits.sh');
        writeFileSync(limits, `#!/bin/sh\nulimit -Sn > ${join(dir, 'limits')}.tmp\nulimit -Hn >> ${join(dir, 'limits')}.tmp\nmv ${join(dir, 'limits')}.tmp ${join(dir, 'limits')}\nexit 1\n`, { mode: 0o755 });
        serviceFile(services, 'com.example.Limits', limits);
        // Executable, but neither a binary nor a script with a #! line.
        const noFormat = join(dir, 'no-format');
        writeFileSync(noFormat, 'echo this must not be run by a shell\n', { mode: 0o755 });
        serviceFile(services, 'com.example.NoFormat', noFormat);
        return `<servicedir>${services}</servicedir>`;
      },
      {},
      ['prlimit', '--nofile=1000:4000', '--'],
    );
  });

  afterAll(async () => {
    await bus?.stop();
  });

  test('the fd limit the bus was started with, not the one it raised for itself', async () => {
    // The script exits 1 without taking its name: the call fails, its record stays.
    await dbusSend(bus.address, 'com.example.Limits', 'Echo', 'string:x');
    expect(readFileSync(join(bus.dir, 'limits'), 'utf8').split('\n')).toEqual(['1000', '4000', '']);
  });

  test('a program the kernel cannot execute fails with Exec format error, as from execve', async () => {
    const r = await dbusSend(bus.address, 'com.example.NoFormat', 'Echo', 'string:x');
    expect(r.stderr).toMatch(/^Error org\.freedesktop\.DBus\.Error\.Spawn\.ExecFailed: Failed to execute program com\.example\.NoFormat: Exec format error$/m);
  });
});
