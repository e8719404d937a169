/**
 * Keeping every client across `systemctl restart` (docs/handover.md,
 * "systemd's file descriptor store"): on SIGTERM the bus freezes and hands
 * its sockets and its state (a memory file) to systemd's file descriptor
 * store; the next start gets them back in LISTEN_FDS and resumes the bus as
 * a successor of another process would.
 *
 * systemd does not acknowledge what it stores and does not tell a service
 * (before 254) how much its store holds, so the store is used only when the
 * limit is known: $FDSTORE (set by systemd ≥ 254) or KDBUS_BRIDGE_FDSTORE
 * (set by the unit's drop-in to FileDescriptorStoreMax=).
 */
import * as fs from 'fs';
import { log } from '../log';
import { native } from '../native';
import { Container, decodeContainer, encodeContainer } from './format';
import { handoverNative } from './native-io';
import { controlState, ServingProcess } from './index';

/** FDNAME of the memory file holding the state. */
export const STATE_NAME = 'kdbus-bridge-state';
/** FDNAME of every other descriptor of the bus (listeners, connections, descriptors in queued messages). */
export const FD_NAME = 'kdbus-bridge-fd';
/** Our own way to say how many descriptors the store takes, for systemd before 254. */
export const LIMIT_ENV = 'KDBUS_BRIDGE_FDSTORE';
/** A state saved longer ago than this is not resumed: its clients have long given up on it. */
export const MAX_AGE_MS = 60_000;
/** SCM_MAX_FD: descriptors per message to the notify socket. */
export const PER_MESSAGE = 253;
const BARRIER_TIMEOUT_MS = 10_000;

interface FdStoreNative {
  notifyFds(socket: string, state: string, fds: number[]): number;
  notifyBarrier(socket: string, timeoutMs: number): number;
  hungUpSocket(): number;
}
const io = native as unknown as FdStoreNative;

let limit: number | undefined;

/**
 * Takes the store's size out of the environment (services the bus starts
 * have no store of ours). Call once at start, before anything is spawned.
 */
export function takeFdStoreLimit(env: NodeJS.ProcessEnv = process.env): void {
  const parse = (v: string | undefined): number | undefined => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
  const fromSystemd = parse(env.FDSTORE);
  const fromUnit = parse(env[LIMIT_ENV]);
  delete env.FDSTORE;
  delete env[LIMIT_ENV];
  limit = fromSystemd ?? fromUnit;
  if (limit === 0) limit = undefined;
}

/** What the program executed in place must find again in its environment. */
export function fdStoreEnv(): Record<string, string> {
  return limit !== undefined ? { [LIMIT_ENV]: String(limit) } : {};
}

/** A descriptor's open file, as the other side will see it: device and inode. */
function identity(fd: number): string {
  const st = fs.fstatSync(fd, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      // listed twice
    }
  }
}

/** Sends in messages of at most PER_MESSAGE descriptors; 0 or the first errno. */
export function pushToStore(socket: string, name: string, fds: number[]): number {
  for (let i = 0; i < fds.length; i += PER_MESSAGE) {
    const rc = io.notifyFds(socket, `FDSTORE=1\nFDNAME=${name}`, fds.slice(i, i + PER_MESSAGE));
    if (rc !== 0) return rc;
  }
  return 0;
}

/** sd_notify_barrier(3): 0 once the service manager has read every message before, or an errno. */
export function storeBarrier(socket: string, timeoutMs = BARRIER_TIMEOUT_MS): number {
  return io.notifyBarrier(socket, timeoutMs);
}

function removeFromStore(socket: string): void {
  for (const name of [STATE_NAME, FD_NAME]) native.notify(socket, `FDSTOREREMOVE=1\nFDNAME=${name}`);
}

/**
 * SIGTERM under a service manager with a store: true when the bus is in the
 * store and the process may exit without closing anything; false when it
 * must shut down as usual (no store, or the store cannot take it: logged).
 */
export function keepInStore(p: ServingProcess): boolean {
  const socket = p.notifySocket;
  if (socket === undefined || limit === undefined) return false;
  const refuse = (why: string): false => {
    log.warn(`Not keeping the clients across the restart: ${why}`);
    return false;
  };
  const unsupported = p.bus.handoverUnsupported();
  if (unsupported !== undefined) return refuse(unsupported);
  const frozen = p.bus.freeze();
  let memfd = -1;
  let why: string;
  try {
    const unique = [...new Set(frozen.fds)];
    if (unique.length + 1 > limit) {
      p.bus.thaw();
      return refuse(`the bus has ${unique.length + 1} descriptors to store, the service's store takes ${limit} (FileDescriptorStoreMax=)`);
    }
    const control = { ...controlState(p), fdStore: { savedAtMs: Date.now(), ids: frozen.fds.map(identity) } };
    memfd = handoverNative.memfdFromBuffer(encodeContainer({ control, native: frozen.state }));
    let rc = pushToStore(socket, FD_NAME, unique);
    if (rc === 0) rc = pushToStore(socket, STATE_NAME, [memfd]);
    // Until systemd has read them all, exiting could lose some.
    if (rc === 0) rc = storeBarrier(socket);
    fs.closeSync(memfd);
    memfd = -1;
    if (rc === 0) {
      p.bus.abandon();
      log.info(`Kept ${unique.length} descriptors and the bus's state in the service manager's file descriptor store`);
      return true;
    }
    why = `the service manager did not take them (errno ${rc})`;
  } catch (e) {
    why = (e as Error).message;
  }
  if (memfd >= 0) fs.closeSync(memfd);
  removeFromStore(socket);
  p.bus.thaw();
  return refuse(why);
}

/** Our descriptors among those systemd passed, taken out of LISTEN_FDS. */
export interface StoredDescriptors {
  /** Each decoded state, or why it does not decode. */
  states: Array<Container | Error>;
  fds: number[];
  /** The socket unit's listeners, left in LISTEN_FDS for an ordinary start. */
  sockets: number[];
}

/**
 * At start, before anything else reads LISTEN_FDS: splits off the
 * descriptors this bus stored, and has systemd forget them (they are ours
 * now; a start that fails must not find them again).
 */
export function takeStoredDescriptors(env: NodeJS.ProcessEnv = process.env): StoredDescriptors | undefined {
  if (env.LISTEN_PID !== String(process.pid)) return undefined;
  const n = Number(env.LISTEN_FDS);
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  if (!Number.isInteger(n) || n <= 0 || names.length !== n) return undefined;
  const ours = names.map((name) => name === STATE_NAME || name === FD_NAME);
  if (!ours.includes(true)) return undefined;
  const out: StoredDescriptors = { states: [], fds: [], sockets: [] };
  const otherNames: string[] = [];
  names.forEach((name, i) => {
    const fd = 3 + i;
    if (!ours[i]) {
      out.sockets.push(fd);
      otherNames.push(name);
      return;
    }
    handoverNative.setCloexec(fd, true);
    if (name === FD_NAME) {
      out.fds.push(fd);
      return;
    }
    try {
      out.states.push(decodeContainer(handoverNative.readFd(fd)));
    } catch (e) {
      out.states.push(e as Error);
    }
    fs.closeSync(fd);
  });
  // systemd passes the socket units' descriptors first: what is left for an
  // ordinary start is 3 .. 3+k-1, as sd_listen_fds expects.
  if (otherNames.length > 0) {
    env.LISTEN_FDS = String(otherNames.length);
    env.LISTEN_FDNAMES = otherNames.join(':');
  } else {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  if (env.NOTIFY_SOCKET !== undefined && env.NOTIFY_SOCKET !== '') removeFromStore(env.NOTIFY_SOCKET);
  return out;
}

/**
 * Whether the stored bus is resumed (docs/handover.md states the rule): the
 * newest state that decodes, saved less than MAX_AGE_MS ago, by a bus of
 * the same configuration file, that this build can restore, and whose
 * listeners include every socket systemd passes. Otherwise its descriptors
 * are closed (its clients see the bus go away) and the bus starts afresh.
 */
export function resumeFromStore(stored: StoredDescriptors, configFile: string): { container: Container; fds: number[]; gone: number } | undefined {
  const discard = (why: string): undefined => {
    log.warn(`Not resuming the bus kept in the file descriptor store: ${why}; starting afresh`);
    closeAll(stored.fds);
    return undefined;
  };
  const states = stored.states.filter((s): s is Container => !(s instanceof Error) && s.control.fdStore !== undefined);
  if (states.length === 0) {
    const err = stored.states.find((s): s is Error => s instanceof Error);
    return discard(err !== undefined ? err.message : 'the store holds no state of it');
  }
  states.sort((a, b) => (b.control.fdStore?.savedAtMs ?? 0) - (a.control.fdStore?.savedAtMs ?? 0));
  const container = states[0];
  const meta = container.control.fdStore;
  if (meta === undefined) return discard('the store holds no state of it');
  const age = Date.now() - meta.savedAtMs;
  if (age > MAX_AGE_MS || age < -MAX_AGE_MS) return discard(`it was saved ${Math.round(age / 1000)} s ago (at most ${MAX_AGE_MS / 1000} s)`);
  if (container.control.options.configFile !== configFile) {
    return discard(`it ran with ${container.control.options.configFile}, this bus with ${configFile}`);
  }
  const refused = container.native.length > 0 ? handoverNative.checkState?.(container.native) : 'this build cannot restore a bus';
  if (refused) return discard(refused);
  const byId = new Map<string, number>();
  for (const fd of stored.fds) byId.set(identity(fd), fd);
  const wanted = new Set(meta.ids);
  for (const fd of stored.sockets) {
    if (!wanted.has(identity(fd))) return discard(`systemd passes a listening socket (descriptor ${fd}) the stored bus did not listen on`);
  }
  // systemd closes a stored descriptor that hangs up: a client that left
  // meanwhile. A socket already hung up stands in, so its peer goes the usual way.
  let gone = 0;
  const fds = meta.ids.map((id) => {
    const fd = byId.get(id);
    if (fd !== undefined) return fd;
    gone++;
    const standIn = io.hungUpSocket();
    if (standIn < 0) throw new Error(`cannot make a socket (errno ${-standIn})`);
    byId.set(id, standIn);
    return standIn;
  });
  closeAll(stored.fds.filter((fd) => !fds.includes(fd)));
  // The restored listeners are the socket unit's own: their copies in LISTEN_FDS are not needed.
  closeAll(stored.sockets);
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_FDNAMES;
  return { container, fds, gone };
}
