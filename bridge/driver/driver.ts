// The org.freedesktop.DBus driver: answers calls addressed to the bus. Name
// registry, matches and credentials live in the engine; this module only
// translates D-Bus calls into engine commands and back.
import type { DriverCall, NativeBus } from '../native';
import { BUS_NAME, BUS_PATH, decodeBody, encode, MessageType, NO_REPLY_EXPECTED, variant } from './codec';
import { advertisedInterfaces, INTERFACES, InterfaceSpec, MethodSpec } from './interfaces';
import { introspectXml } from './introspect';
import { isValidBusName } from './names';

export interface DriverContext {
  native: NativeBus;
  guid: string;
  machineId: string;
  busUid: number;
  features(): string[];
  reloadConfig(): void;
  updateActivationEnvironment(vars: Record<string, string>): void;
  activation?: DriverActivation;
  log?: { info(message: string): void };
}

/** What the driver asks of service activation. */
export interface DriverActivation {
  names(): string[];
  /** False when `name` is not activatable; else `done` learns how the start ended. */
  start(name: string, done: (error?: { name: string; message: string }) => void, requester?: string): boolean;
  nameAcquired(name: string): void;
  systemdFailure(unit: string, errorName: string, message: string): void;
}

const SYSTEMD_NAME = 'org.freedesktop.systemd1';
const BUS1 = 'org.kdbusbridge.Bus1';
const SYSTEMD_ACTIVATOR = 'org.freedesktop.systemd1.Activator';

const ERR = 'org.freedesktop.DBus.Error.';
const BUS1_ERR = 'org.kdbusbridge.Error.';
const EPERM = 1;
// kdbus's KDBUS_ATTACH_* bits this bus can attach (README: "Metadata").
const ATTACH = {
  timestamp: 1 << 0,
  creds: 1 << 1,
  pids: 1 << 2,
  auxgroups: 1 << 3,
  names: 1 << 4,
  tidComm: 1 << 5,
  pidComm: 1 << 6,
  exe: 1 << 7,
  cmdline: 1 << 8,
  cgroup: 1 << 9,
  caps: 1 << 10,
  seclabel: 1 << 11,
  audit: 1 << 12,
  connDescription: 1 << 13,
};
const ATTACH_SUPPORTED = Object.values(ATTACH).reduce((a, b) => a | b, 0);
const EBUSY = 16;
const EALREADY = 114;
const E2BIG = 7;
const EACCES = 13;

class DBusError extends Error {
  constructor(readonly errorName: string, message: string) {
    super(message);
  }
}

/** A result to send back; void for an empty reply; null when the handler answered itself. */
type Handler = (call: DriverCall, args: unknown[]) => { signature: string; body: unknown[] } | void | null;

export class Driver {
  private readonly handlers: Map<string, Handler>;

  constructor(private readonly ctx: DriverContext) {
    this.handlers = new Map<string, Handler>([
      ['org.freedesktop.DBus.Hello', () => this.hello()],
      ['org.freedesktop.DBus.RequestName', (c, a) => this.requestName(c, a[0] as string, a[1] as number)],
      ['org.freedesktop.DBus.ReleaseName', (c, a) => this.releaseName(c, a[0] as string)],
      ['org.freedesktop.DBus.StartServiceByName', (c, a) => this.startServiceByName(c, a[0] as string)],
      ['org.freedesktop.DBus.UpdateActivationEnvironment', (_c, a) => this.updateActivationEnvironment(a[0] as [string, string][])],
      ['org.freedesktop.DBus.NameHasOwner', (_c, a) => ({ signature: 'b', body: [this.owner(a[0] as string) !== null] })],
      // ListNames is answered by the addon (kdbus-native/peer.cc): every call that gets past the checks above.
      ['org.freedesktop.DBus.ListActivatableNames', () => ({ signature: 'as', body: [[BUS_NAME, ...(this.ctx.activation?.names() ?? [])]] })],
      // AddMatch, RemoveMatch and GetNameOwner too (peer.cc): only their wrong signatures and interfaces come here.
      ['org.freedesktop.DBus.ListQueuedOwners', (_c, a) => this.listQueuedOwners(a[0] as string)],
      ['org.freedesktop.DBus.GetConnectionUnixUser', (_c, a) => this.unixUser(a[0] as string)],
      ['org.freedesktop.DBus.GetConnectionUnixProcessID', (_c, a) => this.unixProcessId(a[0] as string)],
      ['org.freedesktop.DBus.GetAdtAuditSessionData', (_c, a) => this.auditData(a[0] as string)],
      ['org.freedesktop.DBus.GetConnectionSELinuxSecurityContext', (_c, a) => this.selinuxContext(a[0] as string)],
      ['org.freedesktop.DBus.ReloadConfig', () => this.ctx.reloadConfig()],
      ['org.freedesktop.DBus.GetId', () => ({ signature: 's', body: [this.ctx.guid] })],
      ['org.freedesktop.DBus.GetConnectionCredentials', (c, a) => this.credentials(a[0] as string, c.unixFds)],
      ['org.freedesktop.DBus.Properties.Get', (_c, a) => this.getProperty(a[0] as string, a[1] as string)],
      ['org.freedesktop.DBus.Properties.GetAll', (_c, a) => this.getAllProperties(a[0] as string)],
      ['org.freedesktop.DBus.Properties.Set', (_c, a) => this.setProperty(a[0] as string, a[1] as string)],
      ['org.freedesktop.DBus.Introspectable.Introspect', (c) => ({ signature: 's', body: [introspectXml(c.path)] })],
      ['org.freedesktop.DBus.Monitoring.BecomeMonitor', (c, a) => this.becomeMonitor(c, a[0] as string[], a[1] as number)],
      ['org.freedesktop.DBus.Debug.Stats.GetStats', () => this.stats()],
      ['org.freedesktop.DBus.Debug.Stats.GetConnectionStats', (_c, a) => this.connectionStats(a[0] as string)],
      ['org.freedesktop.DBus.Debug.Stats.GetAllMatchRules', () => this.allMatchRules()],
      ['org.kdbusbridge.Bus1.ByeBye', (c) => this.byebye(c)],
      ['org.kdbusbridge.Bus1.SetSendPriority', (c, a) => void this.ctx.native.setSendPriority(c.sender, BigInt(String(a[0])))],
      ['org.kdbusbridge.Bus1.SetAttachFlags', (c, a) => this.setAttachFlags(c, a[0] as number)],
      ['org.kdbusbridge.Bus1.GetConnectionMetadata', (_c, a) => this.connectionMetadata(a[0] as string, a[1] as number)],
      ['org.kdbusbridge.Bus1.SetDescription', (c, a) => this.setDescription(c, a[0] as string)],
      ['org.kdbusbridge.Bus1.SetReceivePriority', (c, a) => void this.ctx.native.setReceivePriority(c.sender, a[0] as boolean)],
      ['org.freedesktop.DBus.Peer.GetMachineId', () => ({ signature: 's', body: [this.ctx.machineId] })],
      ['org.freedesktop.DBus.Peer.Ping', () => undefined],
    ]);
  }

  handle(call: DriverCall): void {
    if (call.type !== MessageType.MethodCall) {
      // Signals and stray replies to the bus are dropped, but for systemd's
      // report that a unit it was asked to start failed.
      if (call.type === MessageType.Signal) this.signal(call);
      return;
    }
    try {
      const [iface, method] = this.lookup(call);
      if (method.privileged) this.checkPrivileged(call);
      if (call.path !== BUS_PATH && !method.anyPath) {
        throw new DBusError(
          `${ERR}AccessDenied`,
          `Method '${method.name}' is only available at the canonical object path '${BUS_PATH}'`,
        );
      }
      if (method.in !== call.signature) {
        throw new DBusError(
          `${ERR}InvalidArgs`,
          `Call to ${method.name} has wrong args (${call.signature}, expected ${method.in})\n`,
        );
      }
      const handler = this.handlers.get(`${iface.name}.${method.name}`);
      if (!handler) {
        // Declared in the extension but not there yet (README lists which).
        if (iface.name === BUS1) throw new DBusError(`${ERR}NotSupported`, `${BUS1}.${method.name} is not supported yet`);
        throw new DBusError(`${ERR}UnknownMethod`, `${BUS_NAME} does not understand message ${call.member}`);
      }
      const args = decodeBody(call.signature, call.body, call.bigEndian);
      const result = handler(call, args);
      if (result !== null) this.reply(call, result ?? { signature: '', body: [] });
    } catch (e) {
      if (e instanceof DBusError) this.error(call, e.errorName, e.message);
      else this.error(call, `${ERR}Failed`, String(e instanceof Error ? e.message : e));
    }
  }

  private signal(call: DriverCall): void {
    if (call.interface !== SYSTEMD_ACTIVATOR || call.member !== 'ActivationFailure' || call.signature !== 'sss') return;
    // Only systemd itself may say so.
    if (this.ctx.native.getNameOwner(SYSTEMD_NAME) !== call.sender) return;
    const [unit, errorName, message] = decodeBody(call.signature, call.body, call.bigEndian) as string[];
    this.ctx.activation?.systemdFailure(unit, errorName, message);
  }

  // As dbus-daemon: the first interface (in table order) that answers at this
  // path and has the member; an interface that matched by name but lacks the
  // member makes the error UnknownMethod rather than UnknownInterface.
  private lookup(call: DriverCall): [InterfaceSpec, MethodSpec] {
    const canonical = call.path === BUS_PATH;
    let foundInterface = false;
    for (const iface of INTERFACES) {
      if (!canonical && !iface.anyPath) continue;
      if (call.interface !== undefined && call.interface !== iface.name) continue;
      foundInterface = true;
      const method = iface.methods.find((mm) => mm.name === call.member);
      if (method) return [iface, method];
    }
    throw new DBusError(
      foundInterface ? `${ERR}UnknownMethod` : `${ERR}UnknownInterface`,
      `${BUS_NAME} does not understand message ${call.member}`,
    );
  }

  private checkPrivileged(call: DriverCall): void {
    const uid = this.ctx.native.getCredentials(call.sender)?.uid;
    if (uid === 0 || uid === this.ctx.busUid) return;
    throw new DBusError(
      `${ERR}AccessDenied`,
      `The caller does not have the necessary privileges to call ${call.interface ?? ''}.${call.member}`,
    );
  }

  /** The set of activatable names changed (a reload found new or removed service files). */
  activatableServicesChanged(): void {
    this.send({ type: MessageType.Signal, path: BUS_PATH, interface: BUS_NAME, member: 'ActivatableServicesChanged' });
  }

  private send(msg: Parameters<typeof encode>[0]): void {
    const { bytes, fds } = encode(msg);
    this.ctx.native.send(bytes, fds);
  }

  // As dbus-daemon, NO_REPLY_EXPECTED spares only empty replies (AddMatch,
  // Ping, ...): a reply that carries a value, and every error, is sent.
  private reply(call: DriverCall, result: { signature: string; body: unknown[] }): void {
    if (result.signature === '' && call.flags & NO_REPLY_EXPECTED) return;
    // The common shapes are written by the addon: dbus-next's serializer is
    // the slow part of answering AddMatch, NameHasOwner and the like.
    if (this.ctx.native.sendReply(call.sender, call.serial, result.signature, result.body[0])) return;
    this.send(
      {
        type: MessageType.MethodReturn,
        destination: call.sender,
        replySerial: call.serial,
        signature: result.signature,
        body: result.body,
      },
    );
  }

  private error(call: DriverCall, name: string, text: string): void {
    this.ctx.native.sendError(call.sender, call.serial, name, text);
  }

  // The addon answers the Hello that registers a connection; any later one is an error.
  private hello(): never {
    throw new DBusError(`${ERR}Failed`, 'Already handled an Hello message');
  }

  private requestName(call: DriverCall, name: string, flags: number) {
    if (!isValidBusName(name)) throw new DBusError(`${ERR}InvalidArgs`, `Requested bus name "${name}" is not valid`);
    if (name.startsWith(':')) {
      throw new DBusError(`${ERR}InvalidArgs`, `Cannot acquire a service starting with ':' such as "${name}"`);
    }
    if (name === BUS_NAME) {
      throw new DBusError(
        `${ERR}InvalidArgs`,
        `Connection "${call.sender}" is not allowed to own the service "${name}" because it is reserved for D-Bus' use only`,
      );
    }
    const rc = this.ctx.native.requestName(call.sender, name, flags);
    if (rc === -E2BIG) {
      throw new DBusError(
        `${ERR}LimitsExceeded`,
        `Connection "${call.sender}" is not allowed to own more services (increase limits in configuration file if required)`,
      );
    }
    if (rc === -EACCES) {
      throw new DBusError(
        `${ERR}AccessDenied`,
        `Connection "${call.sender}" is not allowed to own the service "${name}" due to security policies in the configuration file`,
      );
    }
    if (rc < 0) throw new DBusError(`${ERR}Failed`, `Could not acquire name "${name}" (errno ${-rc})`);
    if (rc === 1) this.ctx.activation?.nameAcquired(name);  // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
    return { signature: 'u', body: [rc] };
  }

  private releaseName(call: DriverCall, name: string) {
    if (!isValidBusName(name)) throw new DBusError(`${ERR}InvalidArgs`, `Given bus name "${name}" is not valid`);
    if (name.startsWith(':')) {
      throw new DBusError(`${ERR}InvalidArgs`, `Cannot release a service starting with ':' such as "${name}"`);
    }
    if (name === BUS_NAME) {
      throw new DBusError(`${ERR}InvalidArgs`, `Cannot release the ${BUS_NAME} service because it is owned by the bus`);
    }
    const rc = this.ctx.native.releaseName(call.sender, name);
    if (rc < 0) throw new DBusError(`${ERR}Failed`, `Could not release name "${name}" (errno ${-rc})`);
    return { signature: 'u', body: [rc] };
  }

  // As dbus-daemon: only a name with a .service file can be started or be
  // "already running"; the bus's own name and unique names never are.
  private startServiceByName(call: DriverCall, name: string): null | { signature: string; body: unknown[] } {
    if (!(this.ctx.activation?.names().includes(name) ?? false)) {
      throw new DBusError(`${ERR}ServiceUnknown`, `The name ${name} was not provided by any .service files`);
    }
    if (this.owner(name) !== null) return { signature: 'u', body: [2] };  // DBUS_START_REPLY_ALREADY_RUNNING
    const started = this.ctx.activation?.start(name, this.startReplyWaiter(call), call.sender);
    if (!started) throw new DBusError(`${ERR}ServiceUnknown`, `The name ${name} was not provided by any .service files`);
    return null;
  }

  /** Answers a StartServiceByName call once its start ends; carried across a handover by replyTo. */
  startReplyWaiter(replyTo: { sender: string; serial: number; flags: number }) {
    const call = replyTo as DriverCall;
    const waiter = (error?: { name: string; message: string }): void => {
      if (error) this.error(call, error.name, error.message);
      else this.reply(call, { signature: 'u', body: [1] });  // DBUS_START_REPLY_SUCCESS
    };
    return Object.assign(waiter, { replyTo: { sender: replyTo.sender, serial: replyTo.serial, flags: replyTo.flags } });
  }

  private updateActivationEnvironment(pairs: [string, string][]) {
    const vars: Record<string, string> = {};
    for (const [k, v] of pairs) vars[k] = v;
    this.ctx.updateActivationEnvironment(vars);
  }

  private owner(name: string): string | null {
    if (name === BUS_NAME) return BUS_NAME;
    return this.ctx.native.getNameOwner(name);
  }

  private listQueuedOwners(name: string) {
    if (name === BUS_NAME) return { signature: 'as', body: [[BUS_NAME]] };
    // A unique name is its own only owner.
    if (name.startsWith(':') && this.ctx.native.getCredentials(name) !== null) return { signature: 'as', body: [[name]] };
    const owners = this.ctx.native.listQueuedOwners(name);
    if (owners === null) {
      throw new DBusError(`${ERR}NameHasNoOwner`, `Could not get owners of name '${name}': no such name`);
    }
    return { signature: 'as', body: [owners] };
  }

  /** Credentials of a connection, or of the bus itself for org.freedesktop.DBus. */
  private creds(name: string, what: string) {
    if (name === BUS_NAME) {
      return { unique: BUS_NAME, uid: this.ctx.busUid, pid: process.pid, gid: process.getgid?.() };
    }
    const c = this.ctx.native.getCredentials(name);
    if (c === null) throw new DBusError(`${ERR}NameHasNoOwner`, `Could not get ${what} of name '${name}': no such name`);
    return c;
  }

  private unixUser(name: string) {
    const c = this.creds(name, 'UID');
    if (c.uid === undefined) throw new DBusError(`${ERR}Failed`, `Could not determine UID for '${name}'`);
    return { signature: 'u', body: [c.uid] };
  }

  private unixProcessId(name: string) {
    const c = this.creds(name, 'PID');
    if (c.pid === undefined) {
      throw new DBusError(`${ERR}UnixProcessIdUnknown`, `Could not determine PID for '${name}'`);
    }
    return { signature: 'u', body: [c.pid] };
  }

  private auditData(name: string) {
    this.creds(name, 'audit session data');
    throw new DBusError(`${ERR}AdtAuditDataUnknown`, `Could not determine audit session data for '${name}'`);
  }

  private selinuxContext(name: string) {
    this.creds(name, 'security context');
    throw new DBusError(`${ERR}SELinuxSecurityContextUnknown`, `Could not determine security context for '${name}'`);
  }

  private credentials(name: string, withFd: boolean) {
    const c = this.creds(name, 'credentials');
    const dict: Record<string, unknown> = {};
    if (c.uid !== undefined) dict.UnixUserID = variant('u', c.uid);
    if ('groups' in c && c.groups !== undefined) dict.UnixGroupIDs = variant('au', c.groups);
    if (c.pid !== undefined) dict.ProcessID = variant('u', c.pid);
    // A pidfd can only reach callers that negotiated fd passing.
    if (withFd && 'pidfd' in c && c.pidfd !== undefined) dict.ProcessFD = variant('h', c.pidfd);
    if ('seclabel' in c && c.seclabel !== undefined) {
      dict.LinuxSecurityLabel = variant('ay', Buffer.concat([c.seclabel, Buffer.from([0])]));
    }
    // What kdbus knew besides, under keys of this bus's own (the
    // specification reserves unprefixed keys).
    const facts = name === BUS_NAME ? null : this.ctx.native.getProcessFacts(name);
    if (facts) {
      dict['org.kdbusbridge.ParentProcessID'] = variant('u', facts.ppid);
      dict['org.kdbusbridge.ProcessName'] = variant('s', facts.comm);
      dict['org.kdbusbridge.Executable'] = variant('s', facts.exe);
      dict['org.kdbusbridge.CommandLine'] = variant('ay', facts.cmdline);
      dict['org.kdbusbridge.CGroup'] = variant('s', facts.cgroup);
    }
    return { signature: 'a{sv}', body: [dict] };
  }

  private becomeMonitor(call: DriverCall, rules: string[], flags: number): null {
    if (flags !== 0) throw new DBusError(`${ERR}InvalidArgs`, 'BecomeMonitor does not support any flags yet');
    for (const rule of rules) {
      const invalid = this.ctx.native.checkMatchRule(rule);
      if (invalid !== null) throw new DBusError(`${ERR}MatchRuleInvalid`, invalid);
    }
    // The reply goes first: it is not itself something the monitor watches.
    this.reply(call, { signature: '', body: [] });
    const who = `${call.sender} (${this.ctx.native.loginfo(call.sender)})`;
    const err = this.ctx.native.becomeMonitor(call.sender, rules);
    if (err !== null) this.ctx.native.disconnect(call.sender);
    else this.ctx.log?.info(`Connection ${who} became a monitor.`);
    return null;
  }

  // kdbus's BYEBYE: refused while anything waits for the caller in the bus;
  // else its names are released and it is sent nothing new but replies.
  private byebye(call: DriverCall) {
    const rc = this.ctx.native.byebye(call.sender);
    if (rc === EBUSY) throw new DBusError(`${BUS1_ERR}Busy`, 'Messages are queued for the connection');
    if (rc === EALREADY) throw new DBusError(`${BUS1_ERR}Failed`, 'ByeBye was already called');
    if (rc === EPERM) throw new DBusError(`${ERR}AccessDenied`, 'Only an ordinary connection can say ByeBye');
    if (rc !== 0) throw new DBusError(`${ERR}Failed`, `ByeBye failed (errno ${rc})`);
  }

  private checkAttachFlags(flags: number): void {
    const unsupported = flags & ~ATTACH_SUPPORTED;
    if (unsupported !== 0) {
      throw new DBusError(`${ERR}NotSupported`, `Attach flags 0x${(unsupported >>> 0).toString(16)} are not supported`);
    }
  }

  private setAttachFlags(call: DriverCall, flags: number) {
    this.checkAttachFlags(flags);
    if (!this.ctx.native.setAttachFlags(call.sender, flags)) throw new DBusError(`${ERR}Failed`, 'Could not set the attach flags');
  }

  private setDescription(call: DriverCall, description: string) {
    // kdbus took a description of up to 255 bytes at HELLO.
    if (Buffer.byteLength(description) > 255) throw new DBusError(`${ERR}InvalidArgs`, 'A description has at most 255 bytes');
    if (!this.ctx.native.setDescription(call.sender, description)) throw new DBusError(`${ERR}Failed`, 'Could not set the description');
  }

  /** kdbus's CONN_INFO with attach flags, as a{sv}. */
  private connectionMetadata(name: string, flags: number) {
    this.checkAttachFlags(flags);
    const c = this.creds(name, 'metadata');
    const facts = name === BUS_NAME ? null : this.ctx.native.getProcessFacts(name);
    const dict: Record<string, unknown> = {};
    if (flags & ATTACH.creds && c.uid !== undefined) {
      dict.UnixUserID = variant('u', c.uid);
      if (c.gid !== undefined) dict.UnixGroupID = variant('u', c.gid);
    }
    if (flags & ATTACH.pids && c.pid !== undefined) {
      dict.ProcessID = variant('u', c.pid);
      if (facts) dict.ParentProcessID = variant('u', facts.ppid);
    }
    if (flags & ATTACH.auxgroups && 'groups' in c && c.groups !== undefined) dict.UnixGroupIDs = variant('au', c.groups);
    if (flags & ATTACH.names && facts) dict.WellKnownNames = variant('as', facts.names);
    if (flags & ATTACH.pidComm && facts) dict.ProcessName = variant('s', facts.comm);
    if (flags & ATTACH.exe && facts) dict.Executable = variant('s', facts.exe);
    if (flags & ATTACH.cmdline && facts) dict.CommandLine = variant('ay', facts.cmdline);
    if (flags & ATTACH.cgroup && facts) dict.CGroup = variant('s', facts.cgroup);
    if (flags & ATTACH.tidComm && facts) dict.ThreadName = variant('s', facts.tidComm);
    if (flags & ATTACH.caps && facts?.caps) {
      const [inheritable, permitted, effective, bounding] = facts.caps;
      dict.Capabilities = variant('(tttt)', [inheritable, permitted, effective, bounding]);
    }
    if (flags & ATTACH.audit && facts && facts.loginuid !== null && facts.sessionid !== null) {
      dict.AuditLoginUID = variant('u', facts.loginuid);
      dict.AuditSessionID = variant('u', facts.sessionid);
    }
    if (flags & ATTACH.connDescription && facts && facts.description !== '') dict.Description = variant('s', facts.description);
    if (flags & ATTACH.seclabel && 'seclabel' in c && c.seclabel !== undefined) {
      dict.LinuxSecurityLabel = variant('ay', Buffer.concat([c.seclabel, Buffer.from([0])]));
    }
    return { signature: 'a{sv}', body: [dict] };
  }

  // The figures of dbus-daemon's statistics that mean the same here; its
  // memory pools, peaks and traffic counters have no counterpart. As in
  // dbus-daemon, BusNames counts what each connection holds: its unique
  // name and every name it owns or waits for in the queue.
  private stats() {
    const s = this.ctx.native.stats();
    let uniques = 0;
    let held = 0;
    for (const name of this.ctx.native.listNames()) {
      if (name.startsWith(':')) uniques += 1;
      else held += this.ctx.native.listQueuedOwners(name)?.length ?? 0;
    }
    return {
      signature: 'a{sv}',
      body: [
        {
          ActiveConnections: variant('u', uniques),
          MatchRules: variant('u', s.matchRules),
          BusNames: variant('u', uniques + held),
        },
      ],
    };
  }

  private connectionStats(name: string) {
    if (name === BUS_NAME) {
      throw new DBusError(`${ERR}InvalidArgs`, `GetConnectionStats is not meaningful for the message bus "${BUS_NAME}" itself`);
    }
    const c = this.creds(name, 'statistics');
    const rules = this.ctx.native.matchRules(c.unique);
    const held = this.ctx.native
      .listNames()
      .filter((n) => !n.startsWith(':') && (this.ctx.native.listQueuedOwners(n) ?? []).includes(c.unique));
    return {
      signature: 'a{sv}',
      body: [
        {
          UniqueName: variant('s', c.unique),
          MatchRules: variant('u', rules.length),
          BusNames: variant('u', 1 + held.length),
        },
      ],
    };
  }

  private allMatchRules() {
    const all: Record<string, string[]> = {};
    for (const name of this.ctx.native.listNames()) {
      if (name.startsWith(':')) all[name] = this.ctx.native.matchRules(name);
    }
    return { signature: 'a{sas}', body: [all] };
  }

  /** Properties of one of the driver's interfaces, as dbus-daemon finds them. */
  private propertiesOf(iface: string): Record<string, unknown> {
    const spec = INTERFACES.find((i) => i.name === iface);
    if (!spec) throw new DBusError(`${ERR}UnknownInterface`, `Interface "${iface}" not found`);
    if (iface !== BUS_NAME) return {};
    return {
      Features: variant('as', this.ctx.features()),
      Interfaces: variant('as', advertisedInterfaces()),
    };
  }

  private property(iface: string, prop: string): unknown {
    const props = this.propertiesOf(iface);
    if (!(prop in props)) throw new DBusError(`${ERR}UnknownProperty`, `Property "${iface}.${prop}" not found`);
    return props[prop];
  }

  private getProperty(iface: string, prop: string) {
    return { signature: 'v', body: [this.property(iface, prop)] };
  }

  private getAllProperties(iface: string) {
    return { signature: 'a{sv}', body: [this.propertiesOf(iface)] };
  }

  private setProperty(iface: string, prop: string): never {
    this.property(iface, prop);
    throw new DBusError(`${ERR}PropertyReadOnly`, `Property '${iface}.${prop}' cannot be set`);
  }
}
