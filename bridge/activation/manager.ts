/**
 * Service activation. Each activatable name is held in the engine by an
 * activator connection; calls to the name queue there until a real owner
 * takes the name, when the engine moves them over. This module decides
 * when to start a service, starts it, watches it, and when the start fails
 * has every queued call answered with the reason.
 */
import type { ChildProcess, SpawnOptions } from 'child_process';
import { spawn } from '../spawn';
import * as fs from 'fs';
import * as os from 'os';
import type { Limits } from '../config/types';
import type { ActivationTrigger, NativeBus } from '../native';
import { encode, MessageType } from '../driver/codec';
import { ExecLineError, splitExecLine } from './argv';
import { execFailure, withoutStartLimit, withStartLimit } from './fd-limit';
import { CANNOT_SWITCH_USER_ERROR, helperExitError, NO_USER_ERROR } from './helper';
import { loadServiceFiles, ServiceEntry } from './servicefiles';
import { lookupAccount } from './users';
import { FdWatch, handoverNative } from '../handover/native-io';

const ERR = 'org.freedesktop.DBus.Error.';
const BUS_NAME = 'org.freedesktop.DBus';
const SYSTEMD_NAME = 'org.freedesktop.systemd1';
const SYSTEMD_ACTIVATOR = 'org.freedesktop.systemd1.Activator';
const SETPRIV = '/usr/bin/setpriv';
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ActivationError {
  name: string;
  message: string;
}

/** Told once how a start ended: undefined when the service took its name. */
export type StartWaiter = ((error?: ActivationError) => void) & {
  /** The StartServiceByName call it answers, so a handover can carry it across. */
  replyTo?: ReplyTo;
};

export interface ReplyTo {
  sender: string;
  serial: number;
  flags: number;
}

/** What a handover carries across of the starts under way (docs/handover.md). */
export interface ActivationSnapshot {
  environment: Record<string, string>;
  pending: {
    name: string;
    requester: string;
    /** The process started for it, still to be reaped. */
    pid?: number;
    /** CLOCK_MONOTONIC nanoseconds at which the start times out. */
    deadlineNs?: string;
    waiters: ReplyTo[];
  }[];
  /** Service processes still running whose exit this process must reap. */
  children?: number[];
}

export interface ActivationContext {
  native: NativeBus;
  /** <type> of the configuration ("session", "system", ...). */
  busType(): string | undefined;
  /** The address a started service connects to. */
  address(): string;
  limits(): Limits;
  serviceHelper(): string | undefined;
  systemdActivation: boolean;
  log: { info(m: string): void; warn(m: string): void };
  /** The set of activatable names changed on a reload. */
  servicesChanged(): void;
  /** The waiter that answers a StartServiceByName call carried across a handover. */
  waiterFor?(replyTo: ReplyTo): StartWaiter;
}

interface PendingStart {
  entry: ServiceEntry;
  /** dbus-daemon's "'SENDER' (LOGINFO)" for the connection that caused the start. */
  requester: string;
  waiters: StartWaiter[];
  child?: ChildProcess;
  /** A child adopted across a handover, watched through its pidfd. */
  adopted?: { pid: number; fd: number; watch: FdWatch };
  timer?: NodeJS.Timeout;
  deadlineNs?: bigint;
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ENOEXEC: 'Exec format error',
  EPERM: 'Operation not permitted',
};

export class Activation {
  private entries = new Map<string, ServiceEntry>();
  private readonly pending = new Map<string, PendingStart>();
  private readonly environment: Record<string, string> = {};
  private loaded = false;
  /** Every service process still running, started by this bus or the one it replaced. */
  private readonly children = new Set<number>();

  constructor(private readonly ctx: ActivationContext) {}

  /** Reads the service directories again and brings the activators in line. */
  reload(dirs: readonly string[]): void {
    const next = loadServiceFiles(dirs, (m) => this.ctx.log.warn(m));
    const changed = next.size !== this.entries.size || [...next.keys()].some((n) => !this.entries.has(n));
    for (const name of this.entries.keys()) {
      if (next.has(name)) continue;
      if (this.pending.has(name)) {
        this.finish(name, { name: `${ERR}ServiceUnknown`, message: `The name ${name} was not provided by any .service files` });
      }
      this.ctx.native.removeActivator(name);
    }
    for (const name of next.keys()) {
      if (this.entries.has(name)) continue;
      const rc = this.ctx.native.addActivator(name);
      // EEXIST: a bus resumed after a handover has its activators already.
      if (rc < 0 && rc !== -17) this.ctx.log.warn(`Unable to make ${name} activatable (errno ${-rc})`);
    }
    // A start already under way keeps the entry it began with.
    this.entries = next;
    if (this.loaded && changed) this.ctx.servicesChanged();
    this.loaded = true;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  updateEnvironment(vars: Record<string, string>): void {
    Object.assign(this.environment, vars);
    if (!this.ctx.systemdActivation) return;
    // Units systemd starts for us see the same environment; nobody waits for
    // its answer. Before systemd is on the bus the call waits at its
    // activator (addressed by name), as dbus-daemon has it activate systemd.
    const owner = this.ctx.native.getNameOwner(SYSTEMD_NAME);
    if (owner === null && !this.entries.has(SYSTEMD_NAME)) return;
    const { bytes } = encode({
      type: MessageType.MethodCall,
      destination: owner ?? SYSTEMD_NAME,
      path: '/org/freedesktop/systemd1',
      interface: 'org.freedesktop.systemd1.Manager',
      member: 'SetEnvironment',
      signature: 'as',
      body: [Object.entries(vars).map(([k, v]) => `${k}=${v}`)],
    });
    this.ctx.native.send(bytes);
  }

  /** From the addon: calls wait at the activator of `name`. */
  activationNeeded(name: string, trigger: ActivationTrigger): void {
    if (this.pending.has(name)) return;
    this.start(name, undefined, trigger.sender);
  }

  /**
   * Starts `name` unless a start is already under way; `waiter` learns the
   * outcome. False when the name is not activatable.
   */
  start(name: string, waiter?: StartWaiter, requester?: string): boolean {
    const entry = this.entries.get(name);
    if (entry === undefined) return false;
    const existing = this.pending.get(name);
    if (existing !== undefined) {
      if (waiter) existing.waiters.push(waiter);
      return true;
    }
    const who = requester === undefined ? '(unknown)' : requester;
    const info = requester === undefined || requester === BUS_NAME ? '(bus)' : this.ctx.native.loginfo(requester);
    const p: PendingStart = { entry, requester: `'${who}' (${info})`, waiters: waiter ? [waiter] : [] };
    this.pending.set(name, p);
    if (this.pending.size > this.ctx.limits().max_pending_service_starts) {
      this.finish(name, {
        name: `${ERR}LimitsExceeded`,
        message: `The maximum number of pending activations has been reached, activation of ${name} failed`,
      });
      return true;
    }
    this.arm(name, p, this.ctx.limits().service_start_timeout);
    if (this.ctx.systemdActivation && name === SYSTEMD_NAME) return true;  // it comes on its own
    if (this.ctx.systemdActivation && entry.systemdService !== undefined) {
      this.requestFromSystemd(name, entry.systemdService, p.requester);
      return true;
    }
    this.spawnService(name, p);
    return true;
  }

  private arm(name: string, p: PendingStart, ms: number): void {
    p.deadlineNs = process.hrtime.bigint() + BigInt(Math.max(0, Math.round(ms))) * 1000000n;
    p.timer = setTimeout(() => {
      p.child?.kill('SIGKILL');
      if (p.adopted) process.kill(p.adopted.pid, 'SIGKILL');
      this.ctx.log.info(`Failed to activate service '${name}': timed out`);
      this.finish(name, { name: `${ERR}TimedOut`, message: `Activation of ${name} timed out` });
    }, ms);
  }

  /** The starts under way, for a handover; the bus is frozen meanwhile. */
  snapshot(): ActivationSnapshot {
    return {
      environment: { ...this.environment },
      pending: [...this.pending].map(([name, p]) => ({
        name,
        requester: p.requester,
        pid: p.child?.pid ?? p.adopted?.pid,
        deadlineNs: p.deadlineNs?.toString(),
        waiters: p.waiters.flatMap((w) => (w.replyTo ? [w.replyTo] : [])),
      })),
      children: [...this.children],
    };
  }

  /**
   * Takes over the starts of the bus this one replaces, after reload() has
   * read the service files: same deadlines, same waiters, and its children,
   * which Node.js cannot adopt, are watched through pidfds.
   */
  adopt(s: ActivationSnapshot): void {
    Object.assign(this.environment, s.environment);
    for (const saved of s.pending) {
      const entry = this.entries.get(saved.name);
      if (entry === undefined) continue;  // its file went away meanwhile; the engine's activator went with it
      const p: PendingStart = { entry, requester: saved.requester, waiters: [] };
      for (const r of saved.waiters) {
        const w = this.ctx.waiterFor?.(r);
        if (w) p.waiters.push(w);
      }
      this.pending.set(saved.name, p);
      const left = saved.deadlineNs === undefined ? this.ctx.limits().service_start_timeout : Number(BigInt(saved.deadlineNs) - process.hrtime.bigint()) / 1e6;
      this.arm(saved.name, p, Math.max(0, left));
      if (saved.pid !== undefined) this.adoptChild(saved.name, p, saved.pid);
    }
    const adopted = new Set(s.pending.map((p) => p.pid));
    for (const pid of s.children ?? []) {
      if (adopted.has(pid)) continue;
      const fd = handoverNative.pidfdOpen(pid);
      if (fd >= 0) this.reapLater(pid, fd);
    }
  }

  /** An adopted child whose start has ended: reaped once it exits, as spawn() would have. */
  private reapLater(pid: number, fd: number): void {
    this.children.add(pid);
    const watch = new handoverNative.FdWatch(fd, () => {
      if (handoverNative.pidfdStatus(fd) === null) return;
      watch.close();
      fs.closeSync(fd);
      this.children.delete(pid);
    });
  }

  private adoptChild(name: string, p: PendingStart, pid: number): void {
    const fd = handoverNative.pidfdOpen(pid);
    if (fd < 0) return;  // gone and reaped already: its name, or the timeout, ends the start
    const onExit = (): void => {
      const status = handoverNative.pidfdStatus(fd);
      if (status === null) return;
      watch.close();
      fs.closeSync(fd);
      if (this.pending.get(name) !== p) return;
      p.adopted = undefined;
      if (status.signal !== null && status.signal !== undefined) {
        this.ctx.log.info(`Activated service '${name}' failed: Process ${name} received signal ${status.signal}`);
        this.finish(name, { name: `${ERR}Spawn.ChildSignaled`, message: `Process ${name} received signal ${status.signal}` });
      } else if (status.code !== null && status.code > 0) {
        this.ctx.log.info(`Activated service '${name}' failed: Process ${name} exited with status ${status.code}`);
        this.finish(name, { name: `${ERR}Spawn.ChildExited`, message: `Process ${name} exited with status ${status.code}` });
      }
    };
    const watch = new handoverNative.FdWatch(fd, onExit);
    p.adopted = { pid, fd, watch };
  }

  /** The name has a primary owner now: the start succeeded. */
  nameAcquired(name: string): void {
    if (!this.pending.has(name)) return;
    this.ctx.log.info(`Successfully activated service '${name}'`);
    this.finish(name);
  }

  /** systemd's owner reports that it could not start `unit`. */
  systemdFailure(unit: string, errorName: string, errorMessage: string): void {
    for (const [name, p] of [...this.pending]) {
      if (p.entry.systemdService === unit) this.finish(name, { name: errorName, message: errorMessage });
    }
  }

  private requestFromSystemd(name: string, unit: string, requester: string): void {
    // dbus-daemon's words, whether systemd is on the bus yet or not.
    const via = this.ctx.native.getNameOwner(SYSTEMD_NAME) !== null ? 'Activating via systemd' : 'Activating systemd to hand-off';
    this.ctx.log.info(`${via}: service name='${name}' unit='${unit}' requested by ${requester}`);
    const { bytes } = encode({
      type: MessageType.Signal,
      destination: SYSTEMD_NAME,
      path: '/org/freedesktop/DBus',
      interface: SYSTEMD_ACTIVATOR,
      member: 'ActivationRequest',
      signature: 's',
      body: [unit],
    });
    // Without a systemd on the bus the request waits at systemd's own
    // activator, which starts it; without that either, nobody can help.
    const rc = this.ctx.native.send(bytes);
    if (rc !== 0) {
      this.finish(name, { name: `${ERR}ServiceUnknown`, message: `The name ${SYSTEMD_NAME} was not provided by any .service files` });
    }
  }

  private childEnvironment(clean: boolean): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = clean ? { PATH: SAFE_PATH } : { ...withoutStartLimit(process.env), ...this.environment };
    const address = this.ctx.address();
    env.DBUS_STARTER_ADDRESS = address;
    const type = this.ctx.busType();
    if (type !== undefined) {
      env.DBUS_STARTER_BUS_TYPE = type;
      if (type === 'session') env.DBUS_SESSION_BUS_ADDRESS = address;
      else if (type === 'system') env.DBUS_SYSTEM_BUS_ADDRESS = address;
    }
    return env;
  }

  private spawnService(name: string, p: PendingStart): void {
    const fail = (error: ActivationError) => {
      this.ctx.log.info(`Activated service '${name}' failed: ${error.message}`);
      this.finish(name, error);
    };
    const helper = this.ctx.serviceHelper();
    if (helper !== undefined) {
      this.spawnThroughHelper(name, p, helper, fail);
      return;
    }
    let argv: string[];
    try {
      argv = splitExecLine(p.entry.exec);
    } catch (e) {
      const msg = e instanceof ExecLineError ? e.message : String(e);
      fail({ name: `${ERR}Spawn.FileInvalid`, message: msg });
      return;
    }
    // Root starts a service as the user its file names, with a clean
    // environment, as dbus-daemon's launch helper does. Any other bus can
    // only start it as itself, which is wrong for a service that names
    // someone else.
    const self = os.userInfo();
    const asRoot = self.uid === 0;
    const user = p.entry.user;
    if (!asRoot && user !== undefined && user !== self.username && lookupAccount(user)?.uid !== self.uid) {
      fail(CANNOT_SWITCH_USER_ERROR);
      return;
    }
    const dropTo = asRoot && user !== undefined && user !== 'root' ? user : undefined;
    const options: SpawnOptions = {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: this.childEnvironment(dropTo !== undefined),
    };
    let command = argv[0];
    let args = argv.slice(1);
    if (dropTo !== undefined) {
      const account = lookupAccount(dropTo);
      if (account === undefined) {
        fail({ name: `${ERR}Spawn.FailedToSetup`, message: `User "${dropTo}" of service ${name} does not exist` });
        return;
      }
      options.env = { ...options.env, HOME: account.home, USER: account.name, LOGNAME: account.name };
      if (fs.existsSync(SETPRIV)) {
        // setpriv sets the supplementary groups too, which spawn's uid/gid cannot.
        try {
          fs.accessSync(command, fs.constants.X_OK);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? '';
          fail({ name: `${ERR}Spawn.ExecFailed`, message: `Failed to execute program ${name}: ${ERRNO_TEXT[code] ?? code}` });
          return;
        }
        args = [`--reuid=${account.uid}`, `--regid=${account.gid}`, `--groups=${account.groups.join(',')}`, '--', command, ...args];
        command = SETPRIV;
      } else {
        options.uid = account.uid;
        options.gid = account.gid;
      }
    }
    this.ctx.log.info(`Activating service name='${name}' requested by ${p.requester}`);
    this.watchChild(name, p, command, args, options, fail, (code) => ({
      name: `${ERR}Spawn.ChildExited`,
      message: `Process ${name} exited with status ${code}`,
    }));
  }

  /**
   * <servicehelper>: dbus-daemon runs `HELPER NAME` with the environment it
   * gives services (the helper, setuid, keeps none of it) and reads the
   * helper's exit status.
   */
  private spawnThroughHelper(name: string, p: PendingStart, helper: string, fail: (e: ActivationError) => void): void {
    if (p.entry.user === undefined) {
      fail(NO_USER_ERROR);
      return;
    }
    this.ctx.log.info(`Activating service name='${name}' requested by ${p.requester} (using servicehelper)`);
    const options: SpawnOptions = { stdio: ['ignore', 'inherit', 'inherit'], env: this.childEnvironment(false) };
    this.watchChild(name, p, helper, [name], options, fail, helperExitError);
  }

  private watchChild(
    name: string,
    p: PendingStart,
    command: string,
    args: string[],
    options: SpawnOptions,
    fail: (e: ActivationError) => void,
    exitError: (code: number) => ActivationError,
  ): void {
    let child: ChildProcess;
    try {
      const limited = withStartLimit(command, args, options);
      child = spawn(limited.command, limited.args, limited.options);
    } catch (e) {
      fail({ name: `${ERR}Spawn.ExecFailed`, message: `Failed to execute program ${name}: ${(e as Error).message}` });
      return;
    }
    p.child = child;
    const pid = child.pid;
    if (pid !== undefined) {
      this.children.add(pid);
      child.once('exit', () => this.children.delete(pid));
    }
    const current = () => this.pending.get(name) === p;
    const execFailed = (code: string, fallback: string) =>
      fail({ name: `${ERR}Spawn.ExecFailed`, message: `Failed to execute program ${name}: ${ERRNO_TEXT[code] ?? fallback}` });
    child.once('error', (e: NodeJS.ErrnoException) => {
      if (!current()) return;
      execFailed(e.code ?? '', e.message);
    });
    const failedExec = execFailure(child);
    child.once('exit', async (code, signal) => {
      const execError = await failedExec;
      if (!current()) return;
      p.child = undefined;
      if (execError !== undefined) {
        execFailed(execError.code, execError.text);
        return;
      }
      if (signal !== null) {
        const number = signalNumber(signal);
        fail({ name: `${ERR}Spawn.ChildSignaled`, message: `Process ${name} received signal ${number}` });
      } else if (code !== 0 && code !== null) {
        fail(exitError(code));
      }
      // Exit status 0: a service that daemonized; its name may still come.
    });
  }

  private finish(name: string, error?: ActivationError): void {
    const p = this.pending.get(name);
    if (p === undefined) return;
    this.pending.delete(name);
    if (p.timer) clearTimeout(p.timer);
    if (p.adopted) {
      // Still running: it stays a child of this process, reaped when it exits.
      const { fd, watch } = p.adopted;
      watch.close();
      this.reapLater(p.adopted.pid, fd);
      p.adopted = undefined;
    }
    if (error !== undefined) this.ctx.native.failActivation(name, error.name, error.message);
    for (const w of p.waiters) w(error);
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return os.constants.signals[signal] ?? 0;
}
