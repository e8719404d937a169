// Starts the bus: the native server on the embedded engine, its listeners,
// and the driver that answers org.freedesktop.DBus.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from './config';
import type { BusConfig } from './config/types';
import { Activation, ActivationSnapshot } from './activation/manager';
import { FreezableBus, Frozen, handoverNative, missingNative } from './handover/native-io';
import { Driver } from './driver/driver';
import { log } from './log';
import { native, NativeBus, NativeBusOptions } from './native';
import type { Handoff } from './handoff';
import { compilePolicy } from './policy';
import { serviceManager } from './service-manager';

export interface BusOptions {
  config: BusConfig;
  configPath?: string;
  addresses: string[];
  systemdActivation: boolean;
  /** Sockets the launcher already listens on: served instead of `addresses`. */
  handoff?: Handoff;
  /** Resume a bus handed over: its native state and descriptors, GUID and addresses. */
  restore?: { state: Buffer; fds: number[]; guid: string; addresses: string[]; restored?(): void };
}

export interface RunningBus {
  addresses: string[];
  guid: string;
  reload(config: BusConfig): void;
  stop(): void;
  /** Why this build cannot hand the bus over, or undefined. */
  handoverUnsupported(): string | undefined;
  /** Stops every native I/O and returns the native state (see bridge/handover). */
  freeze(): Frozen;
  /** Resumes after a handover that did not happen. */
  thaw(): void;
  /** A successor has the sockets: nothing of theirs may be removed on the way out. */
  abandon(): void;
  activationSnapshot(): ActivationSnapshot;
  adoptActivation(s: ActivationSnapshot): void;
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

/**
 * The bus makes $XDG_RUNTIME_DIR/dbus-1/services, where programs drop
 * transient service files, when the configuration lists it (as
 * <standard_session_servicedirs/> does).
 */
function createRuntimeServiceDir(config: BusConfig): void {
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (runtime === undefined || runtime === '') return;
  const dir = path.join(runtime, 'dbus-1', 'services');
  if (!config.serviceDirs.includes(dir)) return;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    log.warn(`Unable to create ${dir}: ${(e as Error).message}`);
  }
}

export function startBus(opts: BusOptions): RunningBus {
  const guid = opts.restore?.guid ?? opts.handoff?.guid ?? randomBytes(16).toString('hex');
  let config = opts.config;
  let driver: Driver | undefined;
  let activation: Activation | undefined;
  const addresses: string[] = [];
  const machine = machineId();
  const busOptions: NativeBusOptions = {
    guid,
    machineId: machine,
    allowAnonymous: config.allowAnonymous,
    mechanisms: config.auth,
    allowedUids: [],
    limits: config.limits,
    onDriverCall: (call) => driver?.handle(call),
    onActivate: (name, trigger) => activation?.activationNeeded(name, trigger),
    onDenied: (text) => log.security(text),
    onMonitorClosed: (name) => log.info(`Monitoring connection ${name} closed.`),
  };
  let bus: NativeBus;
  if (opts.restore !== undefined) {
    const restore = handoverNative.restore;
    if (restore === undefined) throw new Error('this build of the addon cannot restore a bus');
    // The descriptors handed over are the restored bus's now, whether it
    // restores or throws: it keeps those its state names and closes the rest.
    bus = restore(opts.restore.state, opts.restore.fds, busOptions);
    opts.restore.restored?.();
    addresses.push(...opts.restore.addresses);
  } else {
    bus = new native.Bus(busOptions);
  }
  activation = new Activation({
    native: bus,
    busType: () => config.type,
    address: () => addresses[0] ?? '',
    limits: () => config.limits,
    serviceHelper: () => config.serviceHelper,
    systemdActivation: opts.systemdActivation,
    log,
    servicesChanged: () => driver?.activatableServicesChanged(),
    waiterFor: (r) => {
      if (driver === undefined) throw new Error('no driver');
      return driver.startReplyWaiter(r);
    },
  });
  driver = new Driver({
    native: bus,
    guid,
    machineId: machine,
    busUid: os.userInfo().uid,
    // As dbus-daemon orders them; ActivatableServicesChanged is sent on reload.
    features: () => ['ActivatableServicesChanged', 'HeaderFiltering', ...(opts.systemdActivation ? ['SystemdActivation'] : [])],
    reloadConfig: () => {
      const configPath = opts.configPath;
      if (configPath === undefined) return;
      serviceManager.reload(() => {
        // Parsed again so a broken file is reported to the caller; the running
        // configuration is kept in that case.
        let next: BusConfig;
        let policy: ReturnType<typeof compilePolicy>;
        try {
          next = loadConfig(configPath);
          policy = compilePolicy(next, { warn: log.warn });
        } catch (e) {
          log.warn(`Unable to reload configuration: ${(e as Error).message}`);
          throw e;
        }
        config = next;
        bus.setLimits(config.limits);
        bus.setPolicy(policy);
        activation?.reload(config.serviceDirs);
        log.info('Reloaded configuration');
      });
    },
    updateActivationEnvironment: (vars) => activation?.updateEnvironment(vars),
    activation,
    log,
  });

  try {
    bus.setPolicy(compilePolicy(config, { warn: log.warn }));
    if (opts.restore !== undefined) {
      bus.setLimits(config.limits);
    } else if (opts.handoff) {
      for (const l of opts.handoff.listeners) {
        bus.adopt(l.fd, l.address);
        addresses.push(l.address);
      }
    } else {
      for (const a of opts.addresses) addresses.push(...bus.listen(a));
    }
  } catch (e) {
    // A restored bus's sockets are still the old process's too: never shut them down here.
    if (opts.restore === undefined) bus.shutdown();
    throw e;
  }
  if (opts.restore === undefined) createRuntimeServiceDir(config);
  activation.reload(config.serviceDirs);
  return {
    addresses,
    reload(next: BusConfig) {
      config = next;
      bus.setLimits(config.limits);
      bus.setPolicy(compilePolicy(config, { warn: log.warn }));
      activation?.reload(config.serviceDirs);
    },
    stop() {
      bus.shutdown();
    },
    guid,
    handoverUnsupported: () => missingNative(bus),
    freeze() {
      const f = (bus as FreezableBus).freeze;
      if (f === undefined) throw new Error(missingNative(bus));
      return f.call(bus);
    },
    thaw() {
      (bus as FreezableBus).thaw?.call(bus);
    },
    abandon() {
      (bus as FreezableBus).abandon?.call(bus);
    },
    activationSnapshot: () => activation?.snapshot() ?? { environment: {}, pending: [] },
    adoptActivation: (s) => activation?.adopt(s),
  };
}
