/**
 * Handing the running bus to a new program without dropping a connection
 * (docs/handover.md): in place (SIGUSR2: the same process execs the bus's
 * program again) and between processes (--handover-socket / --take-over).
 * The native part freezes and restores sockets and engine; this module
 * carries the control plane's state and runs the exchange.
 */
import { spawn } from '../spawn';
import * as fs from 'fs';
import type { CliOptions } from '../cli';
import { loadConfig } from '../config';
import { log, logSettings } from '../log';
import { compilePolicy } from '../policy';
import type { RunningBus } from '../bus';
import { serviceManager } from '../service-manager';
import { Container, ControlState, CONTROL_VERSION, decodeContainer, encodeContainer } from './format';
import { FdWatch, handoverNative } from './native-io';
import { wallClockMs } from './early';
import { fdStoreEnv } from './fdstore';
import { oldSideEnv } from './timing';

/** Names the memory file holding the state across execve; taken out of the environment at once. */
const STATE_FD_ENV = 'KDBUS_BRIDGE_HANDOVER_FD';
/** How long a successor may take to confirm before the bus carries on itself. */
const CONFIRM_TIMEOUT_MS = 60000;

/** Options of ours, taken off the command line before dbus-daemon's parser sees it. */
export interface HandoverArgs {
  rest: string[];
  handoverSocket?: string;
  takeOver?: string;
  checkState?: number;
}

export function splitHandoverArgs(argv: readonly string[]): HandoverArgs {
  const out: HandoverArgs = { rest: [] };
  for (const arg of argv) {
    const m = /^--(handover-socket|take-over|check-handover-state)=(.*)$/.exec(arg);
    if (m === null) out.rest.push(arg);
    else if (m[1] === 'handover-socket') out.handoverSocket = m[2];
    else if (m[1] === 'take-over') out.takeOver = m[2];
    else out.checkState = Number(m[2]);
  }
  return out;
}

/** What the process that serves knows beyond the bus itself. */
export interface ServingProcess {
  bus: RunningBus;
  argv: string[];
  options: CliOptions;
  notifySocket?: string;
  pidFile?: { file: string; forget(): void };
  daemonized: boolean;
  handoverSocket?: string;
}

export function controlState(p: ServingProcess, fds?: number[]): ControlState {
  return {
    version: CONTROL_VERSION,
    argv: p.argv,
    options: p.options,
    guid: p.bus.guid,
    addresses: p.bus.addresses,
    notifySocket: p.notifySocket,
    log: { ...logSettings() },
    pidFile: p.pidFile?.file,
    daemonized: p.daemonized,
    handoverSocket: p.handoverSocket,
    activation: p.bus.activationSnapshot(),
    fds,
  };
}

/** The state handed over in place, if this process was started that way. */
export function takeInheritedState(): Container | undefined {
  const raw = process.env[STATE_FD_ENV];
  if (raw === undefined) return undefined;
  delete process.env[STATE_FD_ENV];
  const fd = Number(raw);
  try {
    return decodeContainer(handoverNative.readFd(fd));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * --check-handover-state=FD: run by the bus about to re-execute, to learn
 * whether this program can resume it. Exit status 0, or 1 and the reason.
 */
export function checkHandoverState(fd: number): number {
  try {
    const { control, native } = decodeContainer(handoverNative.readFd(fd));
    if (typeof handoverNative.restore !== 'function') throw new Error('this build of the addon cannot restore a bus');
    const refused = native.length > 0 ? handoverNative.checkState?.(native) : null;
    if (refused) throw new Error(refused);
    const config = loadConfig(control.options.configFile);
    compilePolicy(config, { warn: () => undefined });
    return 0;
  } catch (e) {
    fs.writeSync(2, `${(e as Error).message}\n`);
    return 1;
  }
}

/** How the program that runs the bus is started again: Node.js, its options, the entry script. */
function selfCommand(): { file: string; argv: string[] } {
  return { file: process.execPath, argv: [process.argv0, ...process.execArgv, process.argv[1]] };
}

function runCheck(probe: Buffer): Promise<string | undefined> {
  return new Promise((resolve) => {
    let fd: number;
    try {
      fd = handoverNative.memfdFromBuffer(probe);
    } catch (e) {
      resolve((e as Error).message);
      return;
    }
    const self = selfCommand();
    const child = spawn(self.file, [...self.argv.slice(1), '--check-handover-state=3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
      argv0: self.argv[0],
    });
    fs.closeSync(fd);
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => resolve(`cannot run the new program: ${e.message}`));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(undefined);
      else resolve(err.trim() || `the new program's check ended with ${signal ?? `status ${code}`}`);
    });
  });
}

let busy = false;

/**
 * SIGUSR2: re-execute the bus's own program in this process. First a child
 * of the new program checks that it can read the state and the
 * configuration (the bus keeps serving meanwhile); only then is the bus
 * frozen and the program replaced. Whatever fails before execve leaves the
 * old code running, and says why.
 */
export async function upgradeInPlace(p: ServingProcess): Promise<void> {
  if (busy) return;
  const unsupported = p.bus.handoverUnsupported();
  if (unsupported !== undefined) {
    log.warn(`Not upgrading in place: ${unsupported}`);
    return;
  }
  busy = true;
  let wasFrozen = false;
  serviceManager.reloading();
  try {
    // The probe carries a real native state (frozen and thawed at once) so the
    // new program checks the format it will have to read.
    const checkAt = wallClockMs();
    const probe = p.bus.freeze();
    p.bus.thaw();
    const why = await runCheck(encodeContainer({ control: controlState(p), native: probe.state }));
    if (why !== undefined) {
      log.warn(`Not upgrading in place: the new program cannot resume this bus: ${why}`);
      return;
    }
    const frozenAt = wallClockMs();
    const frozen = p.bus.freeze();
    wasFrozen = true;
    const freezeMs = wallClockMs() - frozenAt;
    let memfd = -1;
    let reason: string;
    try {
      const container = encodeContainer({ control: controlState(p, frozen.fds), native: frozen.state });
      memfd = handoverNative.memfdFromBuffer(container);
      // Standard descriptors too: something in the process may have marked
      // them close-on-exec, and the bus's log and its caller's pipes must stay.
      for (const fd of [0, 1, 2, ...frozen.fds, memfd]) {
        const rc = handoverNative.clearCloexec(fd);
        if (rc !== 0) throw new Error(`cannot keep descriptor ${fd} (errno ${rc})`);
      }
      const execAt = wallClockMs();
      const times = { checkMs: frozenAt - checkAt, freezeMs, stateMs: execAt - frozenAt - freezeMs, stateBytes: container.length, frozenAt, execAt };
      const env: NodeJS.ProcessEnv = { ...process.env, ...fdStoreEnv(), [STATE_FD_ENV]: String(memfd), ...oldSideEnv(times) };
      if (p.notifySocket !== undefined) env.NOTIFY_SOCKET = p.notifySocket;
      const self = selfCommand();
      const rc = handoverNative.execve(
        self.file,
        [...self.argv, ...p.argv],
        Object.entries(env).map(([k, v]) => `${k}=${v ?? ''}`),
      );
      reason = `execve failed (errno ${rc})`;
    } catch (e) {
      reason = (e as Error).message;
    }
    // Still here: the old program carries on.
    for (const fd of frozen.fds) handoverNative.setCloexec(fd, true);
    if (memfd >= 0) fs.closeSync(memfd);
    wasFrozen = false;
    p.bus.thaw();
    log.warn(`Not upgrading in place: ${reason}`);
  } catch (e) {
    if (wasFrozen) p.bus.thaw();
    log.warn(`Not upgrading in place: ${(e as Error).message}`);
  } finally {
    busy = false;
    serviceManager.ready();
  }
}

/**
 * --handover-socket=PATH: waits there for a successor (same user or root).
 * The bus is frozen and sent; once the successor confirms, this process
 * exits without touching the sockets it shares with the successor. If the
 * successor fails first, the bus thaws and listens for the next one.
 */
export function listenForSuccessor(p: ServingProcess, path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {
    // nothing stale there
  }
  const lfd = handoverNative.handoverListen(path);
  const watch: FdWatch = new handoverNative.FdWatch(lfd, () => {
    let peer: ReturnType<typeof handoverNative.handoverAccept>;
    try {
      peer = handoverNative.handoverAccept(lfd);
    } catch (e) {
      log.warn(`Unable to accept a successor at ${path}: ${(e as Error).message}`);
      return;
    }
    if (peer === null) return;
    const me = process.getuid?.() ?? 0;
    if (peer.uid !== me && peer.uid !== 0) {
      log.warn(`Refused to hand the bus over to pid ${peer.pid}: uid ${peer.uid} is neither the bus's nor root`);
      fs.closeSync(peer.fd);
      return;
    }
    const unsupported = p.bus.handoverUnsupported();
    if (unsupported !== undefined) {
      handoverNative.handoverSendWord(peer.fd, `refused: ${unsupported}`);
      fs.closeSync(peer.fd);
      log.warn(`Not handing the bus over to pid ${peer.pid}: ${unsupported}`);
      return;
    }
    watch.close();
    fs.closeSync(lfd);
    try {
      fs.unlinkSync(path);
    } catch {
      // removed by someone else: the successor binds its own anyway
    }
    let word: string | null = null;
    let why: string;
    let frozen = false;
    try {
      const frozenAt = wallClockMs();
      const state = p.bus.freeze();
      frozen = true;
      const control = { ...controlState(p), frozen: { atMs: frozenAt, freezeMs: wallClockMs() - frozenAt } };
      const rc = handoverNative.handoverSend(peer.fd, encodeContainer({ control, native: state.state }), state.fds);
      word = rc === 0 ? handoverNative.handoverRecvWord(peer.fd, CONFIRM_TIMEOUT_MS) : null;
      why = rc !== 0 ? `errno ${rc}` : word ?? 'no answer';
    } catch (e) {
      why = (e as Error).message;
    }
    if (word === 'ok') {
      p.bus.abandon();
      log.info(`Handed the bus over to pid ${peer.pid}`);
      // The pid file is the successor's now, the sockets are shared: leave without cleaning up.
      p.pidFile?.forget();
      process.exit(0);
    }
    fs.closeSync(peer.fd);
    if (frozen) p.bus.thaw();
    log.warn(`Handing the bus over to pid ${peer.pid} failed (${why}); carrying on`);
    try {
      listenForSuccessor(p, path);
    } catch (e) {
      log.warn(`No longer waiting for a successor at ${path}: ${(e as Error).message}`);
    }
  });
}

/** --take-over=PATH: receives the bus from the process listening at PATH. */
export function receiveBus(path: string): { container: Container; fds: number[]; confirm(ok: boolean, why?: string): void } {
  const fd = handoverNative.handoverConnect(path);
  const got = handoverNative.handoverReceive(fd, CONFIRM_TIMEOUT_MS);
  return {
    container: decodeContainer(got.data),
    fds: got.fds,
    confirm(ok: boolean, why?: string) {
      handoverNative.handoverSendWord(fd, ok ? 'ok' : `failed: ${why ?? ''}`);
      fs.closeSync(fd);
    },
  };
}
