// Starts the bus: the native server on the embedded engine, its listeners,
// and the driver that answers org.freedesktop.DBus.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import { loadConfig } from './config';
import type { BusConfig } from './config/types';
import { Driver } from './driver/driver';
import { native, NativeBus } from './native';

export interface BusOptions {
  config: BusConfig;
  configPath?: string;
  addresses: string[];
  systemdActivation: boolean;
}

export interface RunningBus {
  addresses: string[];
  reload(config: BusConfig): void;
  stop(): void;
}

function machineId(): string {
  for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = fs.readFileSync(f, 'utf8').trim();
      if (/^[0-9a-f]{32}$/.test(id)) return id;
    } catch {
      // try the next one
    }
  }
  // Without a machine id, one stable for this boot stands in.
  return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '');
}

export function startBus(opts: BusOptions): RunningBus {
  const guid = randomBytes(16).toString('hex');
  let config = opts.config;
  const activationEnv: Record<string, string> = {};
  let driver: Driver | undefined;
  const bus: NativeBus = new native.Bus({
    guid,
    allowAnonymous: config.allowAnonymous,
    mechanisms: config.auth,
    allowedUids: [],
    limits: config.limits,
    onDriverCall: (call) => driver?.handle(call),
  });
  driver = new Driver({
    native: bus,
    guid,
    machineId: machineId(),
    busUid: os.userInfo().uid,
    features: () => ['HeaderFiltering', ...(opts.systemdActivation ? ['SystemdActivation'] : [])],
    reloadConfig: () => {
      if (opts.configPath === undefined) return;
      // Parsed again so a broken file is reported to the caller; the running
      // configuration is kept in that case.
      config = loadConfig(opts.configPath);
      bus.setLimits(config.limits);
    },
    updateActivationEnvironment: (vars) => Object.assign(activationEnv, vars),
  });

  const addresses: string[] = [];
  try {
    for (const a of opts.addresses) addresses.push(...bus.listen(a));
  } catch (e) {
    bus.shutdown();
    throw e;
  }
  return {
    addresses,
    reload(next: BusConfig) {
      config = next;
      bus.setLimits(config.limits);
    },
    stop() {
      bus.shutdown();
    },
  };
}
