/**
 * dbus-daemon's command line, accepted exactly as dbus-daemon 1.14 accepts it.
 *
 * dbus-daemon walks its arguments once, left to right, testing each against
 * a fixed list of forms in a fixed order; its quirks follow from that order
 * (for instance the word after a bare --print-address is taken as its
 * descriptor unless it is one of the options tested earlier, so
 * "--print-address --print-pid" asks for descriptor "--print-pid" and fails).
 * The first stage below reproduces that walk and rewrites what it finds into
 * unambiguous `--name=value` words; yargs then turns those into typed options
 * against a strict schema.
 */
import type yargsType from 'yargs';
import { parseCLong } from './config/numbers';

export const SESSION_CONFIG_FILE = '/usr/share/dbus-1/session.conf';
export const SYSTEM_CONFIG_FILE = '/usr/share/dbus-1/system.conf';

export const PROGRAM_NAME = 'kdbus-bridge';

export const USAGE =
  `${PROGRAM_NAME} [--version] [--session] [--system] [--config-file=FILE]` +
  ' [--print-address[=DESCRIPTOR]] [--print-pid[=DESCRIPTOR]] [--introspect]' +
  ' [--address=ADDRESS] [--nopidfile] [--nosyslog] [--syslog] [--syslog-only]' +
  ' [--nofork] [--fork] [--systemd-activation]';

/** Three-way switches: the command line may force either way or leave it to the config. */
export type Tristate = 'config' | 'always' | 'never';

export interface CliOptions {
  /** Configuration file to load (from --session, --system or --config-file). */
  configFile: string;
  /** --address: overrides every <listen> of the configuration. */
  address?: string;
  /** File descriptor to print the address to; undefined when not asked. */
  printAddressFd?: number;
  /** File descriptor to print the bus pid to; undefined when not asked. */
  printPidFd?: number;
  fork: Tristate;
  /** False with --nopidfile. */
  writePidfile: boolean;
  syslog: Tristate;
  /** --syslog-only: log to syslog and not to standard error. */
  syslogOnly: boolean;
  systemdActivation: boolean;
}

export type CliResult =
  | { kind: 'run'; options: CliOptions }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'introspect' }
  /** `message` (when present) goes to stderr first, then the usage line if `usage`. Exit status 1. */
  | { kind: 'error'; message?: string; usage: boolean };

class CliFailure extends Error {
  constructor(
    readonly result: Extract<CliResult, { kind: 'error' }>,
  ) {
    super(result.message ?? 'usage');
  }
}

function failWith(message: string | undefined, usage = false): never {
  throw new CliFailure({ kind: 'error', message, usage });
}

interface Scan {
  configFile: string;
  address: string;
  printAddress: boolean;
  addrFd: string;
  printPid: boolean;
  pidFd: string;
  fork: Tristate;
  writePidfile: boolean;
  syslog: Tristate;
  syslogOnly: boolean;
  systemdActivation: boolean;
}

type Terminal = 'help' | 'version' | 'introspect';

/** The left-to-right walk, in dbus-daemon's order of tests. */
function scan(argv: readonly string[]): Scan | Terminal {
  const s: Scan = {
    configFile: '',
    address: '',
    printAddress: false,
    addrFd: '',
    printPid: false,
    pidFd: '',
    fork: 'config',
    writePidfile: true,
    syslog: 'config',
    syslogOnly: false,
    systemdActivation: false,
  };
  const oneConfig = (opt: string): void => {
    if (s.configFile.length > 0) failWith(`--${opt} specified but configuration file ${s.configFile} already requested`);
  };
  const oneAddress = (opt: string): void => {
    if (s.address.length > 0) failWith(`--${opt} specified but address ${s.address} already requested`);
  };
  const oneAddrFd = (opt: string): void => {
    if (s.addrFd.length > 0) failWith(`--${opt} specified but printing address to ${s.addrFd} already requested`);
  };
  const onePidFd = (opt: string): void => {
    if (s.pidFd.length > 0) failWith(`--${opt} specified but printing pid to ${s.pidFd} already requested`);
  };
  const valueOf = (arg: string): string => arg.slice(arg.indexOf('=') + 1);

  let prev: string | undefined;
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h' || arg === '-?') return 'help';
    else if (arg === '--version') return 'version';
    else if (arg === '--introspect') return 'introspect';
    else if (arg === '--nosyslog') s.syslog = 'never';
    else if (arg === '--syslog') s.syslog = 'always';
    else if (arg === '--syslog-only') {
      s.syslog = 'always';
      s.syslogOnly = true;
    } else if (arg === '--nofork') s.fork = 'never';
    else if (arg === '--fork') s.fork = 'always';
    else if (arg === '--systemd-activation') s.systemdActivation = true;
    else if (arg === '--nopidfile') s.writePidfile = false;
    else if (arg === '--system') {
      oneConfig('system');
      s.configFile = SYSTEM_CONFIG_FILE;
    } else if (arg === '--session') {
      oneConfig('session');
      s.configFile = SESSION_CONFIG_FILE;
    } else if (arg.startsWith('--config-file=')) {
      oneConfig('config-file');
      s.configFile = valueOf(arg);
    } else if (prev === '--config-file') {
      oneConfig('config-file');
      s.configFile = arg;
    } else if (arg === '--config-file') {
      // the value is the next word
    } else if (arg.startsWith('--address=')) {
      oneAddress('address');
      s.address = valueOf(arg);
    } else if (prev === '--address') {
      oneAddress('address');
      s.address = arg;
    } else if (arg === '--address') {
      // the value is the next word
    } else if (arg.startsWith('--print-address=')) {
      oneAddrFd('print-address');
      s.addrFd = valueOf(arg);
      s.printAddress = true;
    } else if (prev === '--print-address') {
      oneAddrFd('print-address');
      s.addrFd = arg;
      s.printAddress = true;
    } else if (arg === '--print-address') {
      s.printAddress = true;
    } else if (arg.startsWith('--print-pid=')) {
      onePidFd('print-pid');
      s.pidFd = valueOf(arg);
      s.printPid = true;
    } else if (prev === '--print-pid') {
      onePidFd('print-pid');
      s.pidFd = arg;
      s.printPid = true;
    } else if (arg === '--print-pid') {
      s.printPid = true;
    } else {
      failWith(undefined, true);
    }
    prev = arg;
  }
  return s;
}

/** A descriptor as dbus-daemon reads one: strtol base 0, whole string, 0..INT_MAX. */
export function parseDescriptor(text: string): number | undefined {
  const parsed = parseCLong(text);
  if (!parsed || parsed.end !== text.length || parsed.value < 0 || parsed.value > 2147483647) return undefined;
  return parsed.value;
}

function descriptor(wanted: boolean, text: string): number | undefined {
  if (!wanted) return undefined;
  if (text.length === 0) return 1;
  const fd = parseDescriptor(text);
  if (fd === undefined) failWith(`Invalid file descriptor: "${text}"`);
  return fd;
}

/** The walk's findings as canonical words for yargs. */
function canonical(s: Scan): string[] {
  const words = [`--config-file=${s.configFile}`, `--fork=${s.fork}`, `--syslog=${s.syslog}`];
  if (s.address.length > 0) words.push(`--address=${s.address}`);
  const addrFd = descriptor(s.printAddress, s.addrFd);
  if (addrFd !== undefined) words.push(`--print-address=${addrFd}`);
  const pidFd = descriptor(s.printPid, s.pidFd);
  if (pidFd !== undefined) words.push(`--print-pid=${pidFd}`);
  if (!s.writePidfile) words.push('--nopidfile');
  if (s.syslogOnly) words.push('--syslog-only');
  if (s.systemdActivation) words.push('--systemd-activation');
  return words;
}

const TRISTATE: readonly Tristate[] = ['config', 'always', 'never'];

// Loaded when a command line is parsed: a bus upgraded in place reuses the
// parse its old image made, and saves Node.js loading yargs inside the pause.
function loadYargs(): typeof yargsType {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return require('yargs') as typeof yargsType;
}

function typed(words: string[]): CliOptions {
  const parsed = loadYargs()(words)
    .parserConfiguration({
      'camel-case-expansion': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'boolean-negation': false,
      'short-option-groups': false,
      'duplicate-arguments-array': false,
    })
    .option('config-file', { type: 'string', demandOption: true })
    .option('address', { type: 'string' })
    .option('print-address', { type: 'string' })
    .option('print-pid', { type: 'string' })
    .option('fork', { type: 'string', choices: TRISTATE, demandOption: true })
    .option('syslog', { type: 'string', choices: TRISTATE, demandOption: true })
    .option('nopidfile', { type: 'boolean', default: false })
    .option('syslog-only', { type: 'boolean', default: false })
    .option('systemd-activation', { type: 'boolean', default: false })
    .strict()
    .help(false)
    .version(false)
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    })
    .parseSync();
  const fd = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  return {
    configFile: parsed['config-file'],
    address: parsed.address,
    printAddressFd: fd(parsed['print-address']),
    printPidFd: fd(parsed['print-pid']),
    fork: parsed.fork as Tristate,
    writePidfile: !parsed.nopidfile,
    syslog: parsed.syslog as Tristate,
    syslogOnly: parsed['syslog-only'],
    systemdActivation: parsed['systemd-activation'],
  };
}

/** Parses the arguments after the program name. Never exits and never prints. */
export function parseCommandLine(argv: readonly string[]): CliResult {
  try {
    const s = scan(argv);
    if (typeof s === 'string') return { kind: s };
    if (s.configFile.length === 0) failWith('No configuration file specified.', true);
    return { kind: 'run', options: typed(canonical(s)) };
  } catch (e) {
    if (e instanceof CliFailure) return e.result;
    throw e;
  }
}

/** --address replaces the configuration's <listen> list; otherwise that list, in order. */
export function listenAddresses(options: Pick<CliOptions, 'address'>, config: { listen: string[] }): string[] {
  return options.address !== undefined && options.address.length > 0 ? [options.address] : [...config.listen];
}

/** Whether this run should daemonize: the command line wins, else <fork/>. */
export function shouldFork(options: Pick<CliOptions, 'fork'>, config: { fork: boolean }): boolean {
  return options.fork === 'always' || (options.fork === 'config' && config.fork);
}

/** The text `--version` prints, shaped like dbus-daemon's. */
export function versionText(version: string): string {
  return (
    `${PROGRAM_NAME} ${version} (D-Bus Message Bus Daemon, kdbus model)\n` +
    'Compatible with the command line and configuration files of dbus-daemon 1.14.\n' +
    'This is free software; see the source for copying conditions.\n' +
    'There is NO warranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.\n'
  );
}
