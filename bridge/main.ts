/**
 * The kdbus-bridge process: dbus-daemon's life cycle around the bus.
 * Parse the command line, read the configuration, daemonize if asked, start
 * the bus, tell the caller where it is, then serve until told to stop.
 */
// First: SIGUSR2's early handler and the start-up clock (handover/early.ts says why).
import { takeEarlyUpgrade, wallClockMs } from './handover/early';
import * as fs from 'fs';
import * as path from 'path';
import { CliOptions, listenAddresses, parseCommandLine, PROGRAM_NAME, shouldFork, USAGE, versionText } from './cli';
import { BusConfig, ConfigSource, loadConfig } from './config';
import { forkDaemon, redirectToDevNull, reportToParent, takeReadyFd } from './daemonize';
import { dismissSweeper, Handoff, takeHandoff } from './handoff';
import { native } from './native';
import { writeStartPlan } from './start-plan';
import { busLogPrefix, configureLog, log } from './log';
import { startBus, RunningBus } from './bus';
import { compilePolicy } from './policy';
import { preloadCodec } from './driver/codec';
import { introspectXml } from './driver/introspect';
import { serviceManager, takeNotifySocket } from './service-manager';
import { checkHandoverState, listenForSuccessor, receiveBus, ServingProcess, splitHandoverArgs, takeInheritedState, upgradeInPlace } from './handover';
import type { Container } from './handover/format';
import { ResumeTimeline } from './handover/timing';
import { keepInStore, resumeFromStore, StoredDescriptors, takeFdStoreLimit, takeStoredDescriptors } from './handover/fdstore';

const mainAt = wallClockMs();

function packageVersion(): string {
  // Compiled code lives one directory deeper than the sources; look upwards.
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === PROGRAM_NAME && pkg.version) return pkg.version;
    } catch {
      // not here
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off);
}

/** Failure before the bus is serving: dbus-daemon's wording, status 1. */
class StartupError extends Error {}

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'EBADF':
      return 'Bad file descriptor';
    case 'EPIPE':
      return 'Broken pipe';
    case 'EACCES':
      return 'Permission denied';
    case 'ENOENT':
      return 'No such file or directory';
    default:
      return err.message;
  }
}

/**
 * --print-address / --print-pid: the address first, then the pid, each
 * followed by a newline; a descriptor other than stdout/stderr is closed
 * once everything meant for it is written, so the reader sees end-of-file.
 */
function printStartupInfo(options: CliOptions, address: string): void {
  const perFd = new Map<number, string>();
  const add = (fd: number | undefined, text: string): void => {
    if (fd !== undefined) perFd.set(fd, (perFd.get(fd) ?? '') + text);
  };
  add(options.printAddressFd, `${address}\n`);
  add(options.printPidFd, `${process.pid}\n`);
  for (const [fd, text] of perFd) {
    try {
      writeAll(fd, text);
    } catch (e) {
      throw new StartupError(`Writing to pipe: ${errnoText(e)}`);
    }
    if (fd > 2) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed by someone else; nothing was lost
      }
    }
  }
}

class PidFile {
  private written = false;
  constructor(readonly file: string) {}

  write(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new StartupError(
          `The pid file "${this.file}" exists, if the message bus is not running, remove this file`,
        );
      }
      throw new StartupError(`Failed to open "${this.file}": ${errnoText(e)}`);
    }
    try {
      writeAll(fd, `${process.pid}\n`);
    } finally {
      fs.closeSync(fd);
    }
    this.written = true;
  }

  /** A pid file the bus this one replaces wrote: ours to remove now; `rewrite` puts our pid in. */
  adopt(rewrite: boolean): void {
    if (rewrite) fs.writeFileSync(this.file, `${process.pid}\n`, { mode: 0o644 });
    this.written = true;
  }

  /** Handed to a successor: no longer ours to remove. */
  forget(): void {
    this.written = false;
  }

  remove(): void {
    if (!this.written) return;
    this.written = false;
    try {
      fs.unlinkSync(this.file);
    } catch {
      // removed by someone else, or we lost the right to; either way it is gone from our hands
    }
  }
}

/** The numeric ids of a local account, from the password database file. */
function lookupUser(user: string): { uid: number; gid: number } | undefined {
  let passwd: string;
  try {
    passwd = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && f[0] === user) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

/** <user>: drop root after the listeners are bound, as dbus-daemon does. */
function switchUser(user: string): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  const ids = lookupUser(user);
  if (!ids) throw new StartupError(`Could not get UID and GID for username "${user}"`);
  if (ids.uid === 0) return;
  try {
    const withGroups = process as { initgroups?: (user: string, extraGroup: number) => void };
    withGroups.initgroups?.(user, ids.gid);
    process.setgid?.(ids.gid);
    process.setuid?.(ids.uid);
  } catch (e) {
    throw new StartupError(`Failed to drop privileges to user "${user}": ${(e as Error).message}`);
  }
}

function resolveConfigFile(file: string): string {
  return path.resolve(file);
}

/** Descriptors a forked child must keep: print targets and a config given as /proc/self/fd/N. */
function descriptorsForChild(options: CliOptions): number[] {
  const fds: number[] = [];
  for (const fd of [options.printAddressFd, options.printPidFd]) if (fd !== undefined) fds.push(fd);
  const m = /^\/(?:proc\/self\/fd|dev\/fd)\/(\d+)$/.exec(options.configFile);
  if (m) fds.push(Number(m[1]));
  return fds;
}

/** What a handover needs to carry on, beyond what run() already has. */
interface HandoverStart {
  argv: string[];
  handoverSocket?: string;
  /** The state to resume from (in place, or received over --take-over's socket). */
  resume?: {
    container: Container;
    fds: number[];
    confirm?(ok: boolean, why?: string): void;
    /** From systemd's file descriptor store; `gone`: its descriptors systemd closed meanwhile. */
    fromStore?: { gone: number };
  };
  timeline?: ResumeTimeline;
  /** A successor's configuration, read before it asked for the bus. */
  prepared?: { configFile: string; config: BusConfig };
}

/**
 * What a successor (--take-over) can do before the old bus freezes: the
 * configuration it was given, read and checked, and the driver's codec.
 * Anything wrong is left for the resume to report as usual.
 */
function prepareSuccessor(args: string[]): { prepared: HandoverStart['prepared']; parsed: ReturnType<typeof parseCommandLine> } {
  preloadCodec();
  const parsed = parseCommandLine(args);
  if (parsed.kind !== 'run') return { prepared: undefined, parsed };
  const configFile = resolveConfigFile(parsed.options.configFile);
  try {
    const config = loadConfig(configFile, { warn: log.warn });
    compilePolicy(config, { warn: () => undefined });
    return { prepared: { configFile, config }, parsed };
  } catch {
    return { prepared: undefined, parsed };
  }
}

function installSignals(bus: RunningBus, options: CliOptions, pidFile: PidFile | undefined, serving?: ServingProcess): void {
  if (serving !== undefined) {
    // On before the early handler is off: Node.js drops a signal that the
    // event loop has not dispatched yet if its last listener goes meanwhile.
    process.on('SIGUSR2', () => void upgradeInPlace(serving));
    if (takeEarlyUpgrade()) setImmediate(() => void upgradeInPlace(serving));
    if (serving.handoverSocket !== undefined) listenForSuccessor(serving, serving.handoverSocket);
  }
  let config: BusConfig | undefined;
  const quit = (notified = false): void => {
    try {
      if (!notified) serviceManager.stopping();
      bus.stop();
    } finally {
      pidFile?.remove();
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => {
    // What `systemctl restart` sends: the clients may wait in systemd's store.
    serviceManager.stopping();
    if (serving !== undefined && keepInStore(serving)) {
      pidFile?.remove();
      process.exit(0);
    }
    quit(true);
  });
  process.on('SIGINT', () => quit());
  process.on('SIGHUP', () => {
    serviceManager.reload(() => {
      try {
        config = loadConfig(options.configFile, { warn: log.warn });
      } catch (e) {
        log.warn(`Unable to reload configuration: ${(e as Error).message}`);
        return;
      }
      try {
        bus.reload(config);
        log.info('Reloaded configuration');
      } catch (e) {
        log.warn(`Unable to reload configuration: ${(e as Error).message}`);
      }
    });
  });
  process.on('exit', () => pidFile?.remove());
}

/**
 * Resumes a bus handed over: its sockets and engine come restored, the
 * configuration is read again, nothing is bound or printed again but the
 * pid (a new process).
 */
function resume(options: CliOptions, start: HandoverStart & { resume: NonNullable<HandoverStart['resume']> }): number {
  const { container, fds, confirm, fromStore } = start.resume;
  const control = container.control;
  const inPlace = confirm === undefined && fromStore === undefined;
  configureLog(inPlace ? control.log : { stderr: !options.syslogOnly, syslog: options.syslog === 'always' || control.log.syslog });
  if (control.notifySocket !== undefined && process.env.NOTIFY_SOCKET === undefined) process.env.NOTIFY_SOCKET = control.notifySocket;
  // Kept for the next handover: taking it out of the environment below forgets it there.
  const notifySocket = process.env.NOTIFY_SOCKET !== '' ? process.env.NOTIFY_SOCKET : undefined;
  takeNotifySocket();
  const timeline = start.timeline;
  let bus: RunningBus;
  let config: BusConfig;
  try {
    config = start.prepared?.configFile === options.configFile ? start.prepared.config : loadConfig(options.configFile, { warn: log.warn });
    configureLog({ prefix: busLogPrefix(config.type) });
    timeline?.mark('configuration');
    bus = startBus({
      config,
      configPath: options.configFile,
      addresses: [],
      systemdActivation: options.systemdActivation,
      restore: { state: container.native, fds, guid: control.guid, addresses: control.addresses, restored: () => timeline?.mark('native restore') },
    });
    bus.adoptActivation(control.activation);
    timeline?.mark('driver, policy and activation');
  } catch (e) {
    const text = `Failed to resume the message bus: ${(e as Error).message}`;
    confirm?.(false, text);
    log.error(text);
    return 1;
  }
  const pidPath = inPlace ? control.pidFile : options.writePidfile ? config.pidfile ?? control.pidFile : undefined;
  const pidFile = pidPath !== undefined ? new PidFile(pidPath) : undefined;
  try {
    pidFile?.adopt(!inPlace);
  } catch (e) {
    log.warn(`Unable to write the pid file ${pidPath}: ${(e as Error).message}`);
  }
  confirm?.(true);
  if (!inPlace) {
    // A new process: its pid, where asked (the address is the old one's and already known).
    try {
      printStartupInfo({ ...options, printAddressFd: undefined }, bus.addresses[0]);
    } catch (e) {
      log.warn((e as Error).message);
    }
  }
  const serving: ServingProcess = {
    bus,
    argv: start.argv,
    options,
    notifySocket,
    pidFile,
    daemonized: control.daemonized,
    handoverSocket: start.handoverSocket,
  };
  installSignals(bus, options, pidFile, serving);
  serviceManager.ready();
  timeline?.mark('pid file, signals, ready');
  timeline?.done();
  if (fromStore !== undefined) {
    const gone = fromStore.gone > 0 ? ` (${fromStore.gone} of its connections hung up meanwhile)` : '';
    log.info(`Resumed the bus from the service manager's file descriptor store${gone}`);
  } else log.info(inPlace ? 'Upgraded in place' : 'Took the bus over');
  setImmediate(preloadCodec);
  return -1;
}

async function run(options: CliOptions, start: HandoverStart = { argv: [] }): Promise<number> {
  if (start.resume !== undefined) {
    // In place, the file the bus was started with: a daemonized bus has moved to / since.
    const inPlace = start.resume.confirm === undefined && start.resume.fromStore === undefined;
    const configFile = inPlace ? start.resume.container.control.options.configFile : resolveConfigFile(options.configFile);
    return resume({ ...options, configFile }, { ...start, resume: start.resume });
  }
  const readyFd = takeReadyFd();
  const isChild = readyFd !== undefined;
  options = { ...options, configFile: resolveConfigFile(options.configFile) };

  const fatal = (message: string): number => {
    const text = `Failed to start message bus: ${message}`;
    if (isChild) reportToParent(readyFd, { ok: false, message: text });
    else log.error(text);
    return 1;
  };

  configureLog({ stderr: !options.syslogOnly, syslog: options.syslog === 'always' });

  let handoff: Handoff | undefined;
  try {
    handoff = takeHandoff();
  } catch (e) {
    return fatal((e as Error).message);
  }
  native.closeInheritedOnExec();

  let config: BusConfig;
  const sources: ConfigSource[] = [];
  try {
    config = loadConfig(options.configFile, { warn: log.warn, onSource: (s) => sources.push(s) });
  } catch (e) {
    return fatal((e as Error).message);
  }
  if (options.syslog === 'config') configureLog({ syslog: config.syslog });

  if (!isChild && shouldFork(options, config)) {
    const outcome = await forkDaemon({ inheritFds: descriptorsForChild(options) });
    if (outcome.ok) return 0;
    log.error(outcome.message.startsWith('Failed to start message bus: ') ? outcome.message : `Failed to start message bus: ${outcome.message}`);
    return 1;
  }

  // Only the process that serves reports to the service manager.
  const notifySocket = process.env.NOTIFY_SOCKET;
  const notifySocketOf = (): string | undefined => (notifySocket !== '' ? notifySocket : undefined);
  takeNotifySocket();
  configureLog({ prefix: busLogPrefix(config.type) });
  if (isChild && !config.keepUmask) process.umask(0o022);

  let bus: RunningBus;
  try {
    bus = startBus({
      config,
      configPath: options.configFile,
      addresses: listenAddresses(options, config),
      systemdActivation: options.systemdActivation,
      handoff,
    });
  } catch (e) {
    return fatal((e as Error).message);
  }

  const pidFile = options.writePidfile && config.pidfile ? new PidFile(config.pidfile) : undefined;
  try {
    pidFile?.write();
    if (config.user) switchUser(config.user);
    // The launcher printed already, before this process was loaded.
    if (!handoff) printStartupInfo(options, bus.addresses[0]);
  } catch (e) {
    bus.stop();
    pidFile?.remove();
    return fatal((e as Error).message);
  }

  if (isChild) {
    // A daemon holds no terminal and none of its caller's pipes: whoever reads
    // our standard output until end-of-file must not wait for us.
    for (const fd of [0, 1, 2] as const) redirectToDevNull(fd);
    configureLog({ stderr: false });
    process.chdir('/');
    reportToParent(readyFd, { ok: true });
  }

  const serving: ServingProcess = {
    bus,
    argv: start.argv,
    options,
    notifySocket: notifySocketOf(),
    pidFile,
    daemonized: isChild,
    handoverSocket: start.handoverSocket,
  };
  installSignals(bus, options, pidFile, serving);
  if (handoff) dismissSweeper(handoff);
  serviceManager.ready();
  // What calls to the bus need, loaded once the bus is announced.
  setImmediate(preloadCodec);
  // For the launcher's next start.
  setImmediate(() => writeStartPlan(options.configFile, config, sources));
  return -1; // keep serving
}

export async function main(argv: readonly string[]): Promise<number> {
  const ho = splitHandoverArgs(argv);
  if (ho.checkState !== undefined) return checkHandoverState(ho.checkState);
  // Before anything is spawned: the state's descriptor is ours alone.
  takeFdStoreLimit();
  let stored: StoredDescriptors | undefined;
  try {
    stored = takeStoredDescriptors();
  } catch (e) {
    log.warn(`Unable to read the file descriptor store: ${(e as Error).message}`);
  }
  let resumeFrom: HandoverStart['resume'];
  let timeline: ResumeTimeline | undefined;
  let prepared: HandoverStart['prepared'];
  let parsedEarly: ReturnType<typeof parseCommandLine> | undefined;
  try {
    const inherited = takeInheritedState();
    if (inherited !== undefined) {
      resumeFrom = { container: inherited, fds: inherited.control.fds ?? [] };
      timeline = new ResumeTimeline(mainAt);
      timeline.mark('state read');
    }
    else if (ho.takeOver !== undefined) {
      // Ready before the old bus freezes: whatever does not need its state is done first.
      const ready = prepareSuccessor(ho.rest);
      prepared = ready.prepared;
      parsedEarly = ready.parsed;
      timeline = ResumeTimeline.takeOver();
      resumeFrom = receiveBus(ho.takeOver);
      timeline.received(resumeFrom.container.control.frozen);
    }
  } catch (e) {
    log.error(`Failed to take the bus over: ${(e as Error).message}`);
    return 1;
  }
  // In place the arguments are the very ones the old image parsed: its parse is reused.
  const parsedBefore = resumeFrom !== undefined && resumeFrom.confirm === undefined ? resumeFrom.container.control.options : undefined;
  // A successor parsed its own before it asked for the bus: not again while the bus waits.
  let result: ReturnType<typeof parseCommandLine> =
    parsedBefore !== undefined ? { kind: 'run', options: { ...parsedBefore } } : parsedEarly ?? parseCommandLine(ho.rest);
  timeline?.mark('command line');
  // A successor may leave the configuration to the bus it takes over.
  if (resumeFrom !== undefined && result.kind === 'error' && result.message === 'No configuration file specified.') {
    result = parseCommandLine([...ho.rest, `--config-file=${resumeFrom.container.control.options.configFile}`]);
  }
  if (stored !== undefined && result.kind === 'run') {
    if (resumeFrom !== undefined) resumeFromStore({ ...stored, states: [new Error('another handover is under way')] }, '');
    else {
      try {
        const kept = resumeFromStore(stored, resolveConfigFile(result.options.configFile));
        if (kept !== undefined) resumeFrom = { container: kept.container, fds: kept.fds, fromStore: { gone: kept.gone } };
      } catch (e) {
        log.error(`Failed to resume the bus kept in the file descriptor store: ${(e as Error).message}`);
        return 1;
      }
    }
  }
  if (resumeFrom !== undefined && result.kind !== 'run') {
    resumeFrom.confirm?.(false, 'bad command line');
    if (result.kind === 'error' && result.message !== undefined) fs.writeSync(2, `${result.message}\n`);
    return 1;
  }
  switch (result.kind) {
    case 'help':
      fs.writeSync(2, `${USAGE}\n`);
      return 1;
    case 'version':
      writeAll(1, versionText(packageVersion()));
      return 0;
    case 'introspect':
      writeAll(1, `${introspectXml()}\n`);
      return 0;
    case 'error':
      if (result.message !== undefined) fs.writeSync(2, `${result.message}\n`);
      if (result.usage) fs.writeSync(2, `${USAGE}\n`);
      return 1;
    case 'run':
      return run(result.options, { argv: argv.filter((a) => !a.startsWith('--take-over=')), handoverSocket: ho.handoverSocket, resume: resumeFrom, timeline, prepared });
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    if (status >= 0) process.exit(status);
  },
  (err: unknown) => {
    log.error(`Failed to start message bus: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
