// The addon's JavaScript surface, typed. The per-message path never comes up
// here: only calls addressed to org.freedesktop.DBus do.
import * as path from 'path';
import type { CompiledPolicy } from './policy';

export interface DriverCall {
  sender: string;  // unique name of the caller
  serial: number;
  flags: number;
  type: number;
  path: string;
  interface?: string;
  member: string;
  signature: string;
  bigEndian: boolean;
  body: Buffer;
  /** the caller negotiated unix fd passing */
  unixFds: boolean;
}

export interface Credentials {
  unique: string;
  uid?: number;
  gid?: number;
  pid?: number;
  groups?: number[];
  seclabel?: Buffer;
  pidfd?: number;
}

export interface ProcessFacts {
  ppid: number;
  comm: string;
  exe: string;
  /** Arguments each ended by NUL. */
  cmdline: Buffer;
  cgroup: string;
  /** The main thread's comm: a socket does not tell which thread sent. */
  tidComm: string;
  /** Inheritable, permitted, effective, bounding; null if unreadable. */
  caps: [bigint, bigint, bigint, bigint] | null;
  /** null without the kernel's audit support. */
  loginuid: number | null;
  sessionid: number | null;
  /** Well-known names the connection owns. */
  names: string[];
  /** Set with org.kdbusbridge.Bus1.SetDescription; empty until then. */
  description: string;
}

/** The first call waiting at an activator (still queued there). */
export interface ActivationTrigger {
  sender: string;
  serial: number;
  path: string;
  interface?: string;
  member: string;
  pid?: number;
  uid?: number;
}

export interface NativeBusOptions {
  guid: string;
  allowAnonymous: boolean;
  /** Peer.GetMachineId's answer to calls that name no destination. */
  machineId: string;
  mechanisms: string[];
  allowedUids: number[];
  onDriverCall: (call: DriverCall) => void;
  /** dbus-daemon's <limit> values by their configuration names. */
  limits?: Record<string, number>;
  /** Calls wait for the activatable `name`: once per start, until the start ends. */
  onActivate?: (name: string, trigger: ActivationTrigger) => void;
  /** The security policy refused a message: dbus-daemon's "Rejected ..." text. */
  onDenied?: (text: string) => void;
  /** A monitor's connection closed while the bus runs: its unique name. */
  onMonitorClosed?: (name: string) => void;
}

export interface NativeBus {
  listen(addresses: string): string[];
  /** Serves a socket the launcher listens on, under the address it printed for it. */
  adopt(fd: number, address: string): void;
  /** Sends a message from the bus itself; its serial is assigned natively. Returns 0 or an errno. */
  send(message: Buffer, fds?: number[]): number;
  sendError(destination: string, replySerial: number, name: string, text: string): void;
  /** A reply with signature "", "s", "u", "b" or "as" written natively; false for other signatures. */
  sendReply(destination: string, replySerial: number, signature: string, value?: unknown): boolean;
  /** D-Bus RequestName reply code (1..4), or a negative errno. */
  requestName(sender: string, name: string, flags: number): number;
  /** D-Bus ReleaseName reply code (1..3), or a negative errno. */
  releaseName(sender: string, name: string): number;
  getNameOwner(name: string): string | null;
  listNames(): string[];
  listQueuedOwners(name: string): string[] | null;
  matchRules(sender: string): string[];
  setLimits(limits: Record<string, number>): void;
  /** Installs a compiled security policy (bridge/policy); takes effect at once for every connection. */
  setPolicy(policy: CompiledPolicy): void;
  /** null when the rule parses, else why not. */
  checkMatchRule(rule: string): string | null;
  /** null when the connection is now a monitor, else why not. */
  becomeMonitor(sender: string, rules: string[]): string | null;
  /** 0, or EBUSY (something waits for it), EALREADY, EPERM (not an ordinary peer). */
  byebye(sender: string): number;
  /** The priority of what `sender` sends without a priority field (lower goes first). */
  setSendPriority(sender: string, priority: bigint): boolean;
  /** Whether `sender`'s queue is read in priority order. */
  setReceivePriority(sender: string, on: boolean): boolean;
  /** What the bus attaches to what `sender` receives (kdbus KDBUS_ATTACH_* bits). */
  setAttachFlags(sender: string, flags: number): boolean;
  /** kdbus's connection description of `sender` (CONN_DESCRIPTION). */
  setDescription(sender: string, description: string): boolean;
  /** What /proc says of a connection's process (read once, then kept); null if unknown. */
  getProcessFacts(name: string): ProcessFacts | null;
  getCredentials(name: string): Credentials | null;
  /** How dbus-daemon describes a connection in its logs: 'uid=0 pid=12 comm="..."'. */
  loginfo(name: string): string;
  disconnect(name: string): void;
  stats(): { connections: number; names: number; matchRules: number; messagesSent: number };
  shutdown(): void;
  /** Makes `name` activatable: returns the activator's id, or a negative errno. */
  addActivator(name: string): number;
  removeActivator(name: string): boolean;
  /** Answers every call queued for `name` with the error; returns how many, -1 if not activatable. */
  failActivation(name: string, errorName: string, message: string): number;
}

interface NativeModule {
  Bus: new (options: NativeBusOptions) => NativeBus;
  syslog(level: 'info' | 'warning' | 'error' | 'security', message: string): void;
  /** One sd_notify(3) datagram to `socket` ("/path" or "@abstract"); 0 or an errno. */
  notify(socket: string, state: string): number;
  /** Marks every descriptor above 2 close-on-exec (see kdbus-native/inherited.cc); false if /proc is not there. */
  closeInheritedOnExec(): boolean;
}

function load(): NativeModule {
  // Another build of the addon (the sanitizer build) stands in for the usual
  // one when named here; it must load, or the run would test the wrong code.
  const chosen = process.env.KDBUS_BRIDGE_NATIVE_ADDON;
  if (chosen) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      return require(path.resolve(chosen)) as NativeModule;
    } catch (e) {
      throw new Error(`kdbus-bridge: cannot load the addon named by KDBUS_BRIDGE_NATIVE_ADDON: ${String(e)}`);
    }
  }
  // Works from the sources (ts-jest) and from dist/.
  const candidates = [
    path.join(__dirname, '..', 'build', 'Release', 'kdbus_native.node'),
    path.join(__dirname, '..', '..', 'build', 'Release', 'kdbus_native.node'),
  ];
  let lastError: unknown;
  for (const c of candidates) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      return require(c) as NativeModule;
    } catch (e) {
      lastError = e;
    }
  }
  throw new Error(`kdbus-bridge: the native addon is not built (npm run build): ${String(lastError)}`);
}

export const native: NativeModule = load();
