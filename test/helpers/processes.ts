import { ChildProcess, spawn, SpawnOptions } from 'child_process';

// Every child a test starts is remembered here so that a failing test can
// never leave a daemon or service running behind it.
const live = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function spawnTracked(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves once the child has exited; sends SIGKILL if SIGTERM is ignored. */
export async function terminate(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (hasExited(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export async function terminateAll(): Promise<void> {
  await Promise.all([...live].map((child) => terminate(child)));
}

/**
 * Waits for the first stdout line that matches, failing with everything the
 * child printed if it exits or the timeout passes first.
 */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    const fail = (why: string) => {
      cleanup();
      reject(new Error(`${why}\nstdout: ${out}\nstderr: ${err}`));
    };
    const onOut = (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l, i, all) => i < all.length - 1 && pattern.test(l));
      if (line !== undefined) {
        cleanup();
        resolve(line);
      }
    };
    const onErr = (chunk: Buffer) => {
      err += chunk.toString();
    };
    const onExit = (code: number | null, signal: string | null) => fail(`exited (code ${code}, signal ${signal}) before printing ${pattern}`);
    const timer = setTimeout(() => fail(`no line matching ${pattern} within ${timeoutMs} ms`), timeoutMs);
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
}

export interface RunOptions {
  address?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  input?: string;
  /** Open descriptors handed to the child as fd 3, 4, ... */
  extraFds?: number[];
}

/**
 * Runs a program to completion with the session bus address pointing at the
 * bus under test. A program that hangs is killed and reported with signal
 * SIGKILL rather than hanging the test.
 */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (options.address !== undefined) env.DBUS_SESSION_BUS_ADDRESS = options.address;
  return new Promise((resolve, reject) => {
    const child = spawnTracked(command, args, {
      env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe', ...(options.extraFds ?? [])],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    if (options.input !== undefined) child.stdin?.end(options.input);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal });
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `pred` until it holds (true) or `timeoutMs` passes (false). */
export async function until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}
