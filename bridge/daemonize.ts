/**
 * --fork for a runtime that cannot fork(2).
 *
 * The parent re-runs this same program as a detached child (its own session,
 * like setsid after fork) with the descriptors it must print to mapped to the
 * same numbers, plus one extra socket on which the child reports "ready" or
 * the reason it failed. The parent exits only after that report, so whoever
 * started the bus knows its outcome from the exit status, as with dbus-daemon.
 */
import { spawn } from './spawn';
import * as fs from 'fs';
import type { Readable } from 'stream';

/** Names the descriptor of the readiness channel in the child's environment. */
const READY_FD_ENV = 'KDBUS_BRIDGE_READY_FD';

export interface ForkRequest {
  /** Descriptors the child must have at the same numbers (print targets, config memfd). */
  inheritFds: number[];
}

export type ForkOutcome = { ok: true } | { ok: false; message: string };

/**
 * In the child: returns the readiness descriptor and forgets the marker so
 * that nothing the bus starts later inherits it. Undefined in a parent.
 */
export function takeReadyFd(): number | undefined {
  const raw = process.env[READY_FD_ENV];
  if (raw === undefined) return undefined;
  delete process.env[READY_FD_ENV];
  const fd = Number(raw);
  return Number.isInteger(fd) && fd > 2 ? fd : undefined;
}

/** In the child: tells the waiting parent how start-up went, then closes the channel. */
export function reportToParent(readyFd: number, outcome: ForkOutcome): void {
  const line = outcome.ok ? 'ready\n' : `error ${outcome.message.replace(/\n/g, ' ')}\n`;
  try {
    fs.writeSync(readyFd, line);
  } catch {
    // The parent is gone; nobody is left to tell.
  }
  try {
    fs.closeSync(readyFd);
  } catch {
    // already closed
  }
}

/**
 * Points a standard descriptor at /dev/null. Node has no dup2, but POSIX
 * open() returns the lowest free number, so closing fd then opening reuses it.
 */
export function redirectToDevNull(fd: 0 | 1 | 2): void {
  try {
    fs.closeSync(fd);
  } catch {
    // it was not open
  }
  const got = fs.openSync('/dev/null', fd === 0 ? 'r' : 'w');
  if (got !== fd) {
    // A lower descriptor was free as well; keep the numbering honest rather
    // than leave a stray descriptor behind.
    fs.closeSync(got);
  }
}

/** In the parent: starts the detached child and waits for its report. */
export function forkDaemon(req: ForkRequest): Promise<ForkOutcome> {
  const wanted = [...new Set(req.inheritFds)].sort((a, b) => a - b);
  for (const fd of wanted) {
    try {
      fs.fstatSync(fd);
    } catch (e) {
      return Promise.resolve({ ok: false, message: `Writing to pipe: ${describeErrno(e)}` });
    }
  }
  const readyIndex = Math.max(2, ...wanted) + 1;
  // Everything the child is not explicitly given is /dev/null (0-2) or
  // absent (3+), so a caller reading our standard output until end-of-file
  // is not kept waiting by the daemon.
  const stdio: Array<'ignore' | 'pipe' | number> = [];
  for (let i = 0; i < readyIndex; i++) stdio.push(wanted.includes(i) ? i : 'ignore');
  stdio.push('pipe');

  const env = { ...process.env, [READY_FD_ENV]: String(readyIndex) };
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio,
    env,
  });

  return new Promise<ForkOutcome>((resolve) => {
    let settled = false;
    const settle = (outcome: ForkOutcome): void => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    child.on('error', (err) => settle({ ok: false, message: `Failed to fork: ${err.message}` }));

    const channel = child.stdio[readyIndex] as Readable | null;
    if (!channel) {
      settle({ ok: false, message: 'Failed to fork: no readiness channel' });
      return;
    }
    let buffered = '';
    channel.setEncoding('utf8');
    channel.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      const line = buffered.slice(0, nl);
      if (line === 'ready') settle({ ok: true });
      else settle({ ok: false, message: line.replace(/^error /, '') });
    });
    channel.on('error', () => undefined);
    channel.on('close', () => {
      settle({ ok: false, message: 'The forked bus exited before it was ready' });
    });
    child.on('exit', (code, signal) => {
      // Give a report that is still in flight a chance to arrive first.
      setImmediate(() =>
        settle({
          ok: false,
          message: `The forked bus exited before it was ready (${signal ? `signal ${signal}` : `status ${code}`})`,
        }),
      );
    });
  }).then((outcome) => {
    // The parent is about to exit; it must not keep the daemon or the
    // channel referenced.
    child.unref();
    const channel = child.stdio[readyIndex];
    if (channel) channel.destroy();
    return outcome;
  });
}

function describeErrno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EBADF') return 'Bad file descriptor';
  return (e as Error).message;
}
