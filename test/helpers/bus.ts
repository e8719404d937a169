import { ChildProcess } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import { spawnTracked, terminate, waitForLine } from './processes';

/**
 * The daemon under test. Pointing this at dbus-daemon checks that the tests
 * themselves describe real D-Bus behaviour.
 */
export function daemonPath(): string {
  return process.env.KDBUS_BRIDGE_TEST_DAEMON ?? resolve(__dirname, '..', '..', 'bin', 'kdbus-bridge');
}

export function sessionLikeConfig(socketDir: string, extra = ''): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=${socketDir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
${extra}
</busconfig>
`;
}

export interface RunningBus {
  address: string;
  pid: number;
  dir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface StartBusOptions {
  /** Full configuration text; `{dir}` is replaced by the bus's temp directory. */
  config?: string;
  /** The daemon to start instead of the one under test (e.g. the reference dbus-daemon). */
  daemon?: string;
  /** A command (and its arguments) that runs the daemon, such as prlimit. */
  wrapper?: string[];
}

export async function startBus(options: StartBusOptions = {}): Promise<RunningBus> {
  const dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-test-'));
  const configFile = join(dir, 'bus.conf');
  const config = options.config?.split('{dir}').join(dir) ?? sessionLikeConfig(dir);
  writeFileSync(configFile, config);
  const command = [...(options.wrapper ?? []), options.daemon ?? daemonPath(), `--config-file=${configFile}`, '--print-address', '--nofork'];
  const child = spawnTracked(command[0], command.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let address: string;
  try {
    address = (await waitForLine(child, /^[a-z]+:.*guid=[0-9a-f]{32}/)).trim();
  } catch (e) {
    await terminate(child);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  // Keep draining output so a chatty daemon never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    address,
    pid: child.pid as number,
    dir,
    process: child,
    async stop() {
      await terminate(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
