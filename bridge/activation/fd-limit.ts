/**
 * Services get back the fd limit the bus was started with, as from
 * dbus-daemon: the bus raises its own (Node.js does at start, then the
 * addon), and a service inheriting a limit of 65536 or more behaves
 * differently (select(), fd-walking loops) from one started by dbus-daemon.
 *
 * Node.js runs no code in a child between fork and exec, so a service is
 * started through a small executable that sets the limit and execs it.
 */
import type { ChildProcess, SpawnOptions, StdioOptions } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Readable } from 'stream';
import * as util from 'util';

/** Set by the launcher before Node.js starts: `SOFT:HARD`, each a number or `infinity`. */
export const START_LIMIT_ENV = 'KDBUS_BRIDGE_NOFILE';

const LIMIT_WORD = /^(?:\d+|infinity):(?:\d+|infinity)$/;

const EXEC_CANDIDATES = [
  path.join(__dirname, '..', '..', 'build', 'Release', 'kdbus-bridge-service-exec'),
  path.join(__dirname, '..', '..', '..', 'build', 'Release', 'kdbus-bridge-service-exec'),
];

export interface LimitedSpawn {
  command: string;
  args: string[];
  options: SpawnOptions;
}

/** The limit to give services, or undefined when the bus was not started by the launcher. */
export function startLimit(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const word = env[START_LIMIT_ENV];
  return word !== undefined && LIMIT_WORD.test(word) ? word : undefined;
}

let serviceExec: string | null | undefined;

function findServiceExec(): string | undefined {
  if (serviceExec === undefined) serviceExec = EXEC_CANDIDATES.find((c) => fs.existsSync(c)) ?? null;
  return serviceExec ?? undefined;
}

/**
 * The same start, through the service executable, with fd 3 as its exec
 * report; unchanged when there is no limit to restore or no executable.
 */
export function withStartLimit(command: string, args: string[], options: SpawnOptions): LimitedSpawn {
  const limit = startLimit();
  const exec = findServiceExec();
  if (limit === undefined || exec === undefined) return { command, args, options };
  const given: StdioOptions = options.stdio ?? 'pipe';
  const stdio = Array.isArray(given) ? given.slice(0, 3) : [given, given, given];
  return { command: exec, args: [limit, command, ...args], options: { ...options, stdio: [...stdio, 'pipe'] } };
}

/** Never for a service: the launcher's word is the bus's own business. */
export function withoutStartLimit(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { [START_LIMIT_ENV]: _omitted, ...rest } = env;
  return rest;
}

export interface ExecError {
  code: string;
  /** strerror's wording, as dbus-daemon's message has it. */
  text: string;
}

function execError(errno: number): ExecError {
  const code = Object.entries(os.constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
  // libuv's wording, where it has one, is strerror's in lower case.
  const known = util.getSystemErrorMap().get(-errno)?.[1];
  const text = known === undefined ? code : known.charAt(0).toUpperCase() + known.slice(1);
  return { code, text };
}

/**
 * Why the service could not be executed, or undefined once it runs;
 * resolves at once for a child not started through the service executable.
 */
export function execFailure(child: ChildProcess): Promise<ExecError | undefined> {
  const report = child.stdio[3] as Readable | null | undefined;
  if (report === null || report === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    report.on('data', (d: Buffer) => chunks.push(d));
    report.once('close', () => {
      const all = Buffer.concat(chunks);
      if (all.length < 4) return resolve(undefined);
      resolve(execError(all.readInt32LE(0)));
    });
    report.once('error', () => resolve(undefined));
  });
}
