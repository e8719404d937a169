// The addon's handover surface, typed. freeze/thaw/restore belong to the
// native snapshot of the engine and the sockets; until a build has them the
// handover is refused with a clear reason rather than attempted.
import { native, NativeBus, NativeBusOptions } from '../native';

export interface Frozen {
  /** The native state (format: docs/handover.md, native part). */
  state: Buffer;
  /** Every descriptor the state refers to, in the order the state numbers them. */
  fds: number[];
}

export interface FreezableBus extends NativeBus {
  /** Stops all native I/O and serializes listeners, peers and the engine. */
  freeze?(): Frozen;
  /** Resumes after a handover that did not happen. */
  thaw?(): void;
  /** A successor has the sockets: shutting this bus down must not remove their files. */
  abandon?(): void;
}

export interface FdWatch {
  close(): void;
}

export interface HandoverNative {
  /** The fds become the bus's, whether it restores or throws. */
  restore?(state: Buffer, fds: number[], options: NativeBusOptions): NativeBus;
  /** null when this build can restore `state`, else why not. */
  checkState?(state: Buffer): string | null;
  memfdFromBuffer(data: Buffer): number;
  readFd(fd: number): Buffer;
  clearCloexec(fd: number): number;
  setCloexec(fd: number, on: boolean): number;
  /** Returns only on failure: the errno. */
  execve(file: string, argv: string[], env: string[]): number;
  handoverListen(path: string): number;
  handoverAccept(fd: number): { fd: number; uid: number; pid: number } | null;
  handoverConnect(path: string): number;
  handoverSend(fd: number, data: Buffer, fds: number[]): number;
  handoverReceive(fd: number, timeoutMs: number): { data: Buffer; fds: number[] };
  handoverSendWord(fd: number, word: string): number;
  handoverRecvWord(fd: number, timeoutMs: number): string | null;
  /** A pidfd, or a negative errno. */
  pidfdOpen(pid: number): number;
  pidfdStatus(fd: number): { code: number | null; signal?: number | null } | null;
  FdWatch: new (fd: number, onReadable: () => void) => FdWatch;
}

export const handoverNative = native as unknown as HandoverNative;

/** Why this build cannot hand the bus over, or undefined when it can. */
export function missingNative(bus: NativeBus): string | undefined {
  const b = bus as FreezableBus;
  if (typeof b.freeze !== 'function' || typeof b.thaw !== 'function' || typeof handoverNative.restore !== 'function') {
    return 'this build of the addon cannot snapshot the bus (freeze/restore are not there yet)';
  }
  return undefined;
}
