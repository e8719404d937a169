/**
 * The bus's diagnostics. They go to standard error only: standard output may
 * be the pipe a caller reads the bus address from, and anything else written
 * there would corrupt it.
 */
import * as fs from 'fs';

export type LogLevel = 'info' | 'warning' | 'error' | 'security';

export interface LogSettings {
  /** Write to standard error (off with --syslog-only, or once daemonized). */
  stderr: boolean;
  /** --syslog / <syslog/>: also to the system log, through the addon. */
  syslog: boolean;
  /**
   * Put before what the running bus reports (not before start-up failures),
   * as dbus-daemon does: "[system] ", or "[session uid=U pid=P] ".
   */
  prefix: string;
}

const settings: LogSettings = { stderr: true, syslog: false, prefix: '' };
let program = 'kdbus-bridge';

export function configureLog(next: Partial<LogSettings>, name?: string): void {
  Object.assign(settings, next);
  if (name !== undefined) program = name;
}

/** dbus-daemon's prefix for the messages of a bus of this <type>. */
export function busLogPrefix(type: string | undefined): string {
  if (type === 'system') return '[system] ';
  if (type === 'session') return `[session uid=${process.getuid?.() ?? 0} pid=${process.pid}] `;
  return '';
}

export function logSettings(): Readonly<LogSettings> {
  return settings;
}

// Every level reads the same on standard error, as dbus-daemon's do; the level
// matters only to syslog.
function emit(level: LogLevel, message: string): void {
  if (level !== 'error') message = settings.prefix + message;
  if (settings.syslog) {
    try {
      // Loaded lazily: the CLI prints --help and --version without the addon.
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      (require('./native') as typeof import('./native')).native.syslog(level, message);
    } catch {
      // No addon, no syslog: standard error still has it.
    }
  }
  if (!settings.stderr) return;
  const line = `${program}[${process.pid}]: ${message}\n`;
  try {
    // Synchronous so messages written just before exit are not lost.
    fs.writeSync(2, line);
  } catch {
    // Standard error may be closed or a broken pipe; a bus must not die of it.
  }
}

/** Debug lines (timings): only with KDBUS_BRIDGE_DEBUG set to anything but empty. */
const debugOn = (process.env.KDBUS_BRIDGE_DEBUG ?? '') !== '';

export const log = {
  /** Never to syslog: meant for someone measuring, on standard error. */
  debug: (message: string): void => {
    if (debugOn && settings.stderr) {
      try {
        fs.writeSync(2, `${program}[${process.pid}]: ${settings.prefix}debug: ${message}\n`);
      } catch {
        // as emit()
      }
    }
  },
  info: (message: string): void => emit('info', message),
  warn: (message: string): void => emit('warning', message),
  error: (message: string): void => emit('error', message),
  /** What the security policy refused (syslog's authorization facility). */
  security: (message: string): void => emit('security', message),
};
