/**
 * The handover container (docs/handover.md): a fixed header, the control
 * plane's state as JSON, then the native state as the addon wrote it.
 *
 *   0  8 bytes  magic "KDBHOVR\0"
 *   8  u32 LE   container version
 *  12  u32 LE   length of the control JSON
 *  16  u64 LE   length of the native state
 *  24  control JSON (UTF-8), then the native state
 *
 * A reader accepts every container version up to its own and refuses later
 * ones; fields added to the JSON are optional for older writers.
 */
import type { CliOptions } from '../cli';
import type { LogSettings } from '../log';
import type { ActivationSnapshot } from '../activation/manager';

export const MAGIC = Buffer.from('KDBHOVR\0', 'latin1');
export const CONTAINER_VERSION = 1;
export const CONTROL_VERSION = 1;
const HEADER = 24;

export interface ControlState {
  /** CONTROL_VERSION of the writer. */
  version: number;
  /** The arguments the bus was started with, after the program name. */
  argv: string[];
  /** The parsed command line, the configuration file resolved. */
  options: CliOptions;
  /** The bus's GUID: clients compare it with the one they authenticated against. */
  guid: string;
  /** The addresses the listeners answer at (the first goes to activated services). */
  addresses: string[];
  /** systemd's NOTIFY_SOCKET, taken out of the environment at start. */
  notifySocket?: string;
  log: LogSettings;
  /** The pid file this bus wrote and removes on exit. */
  pidFile?: string;
  /** The process was daemonized (standard descriptors on /dev/null). */
  daemonized: boolean;
  /** --handover-socket the bus listens on for a successor. */
  handoverSocket?: string;
  activation: ActivationSnapshot;
  /**
   * In place only: the descriptor numbers, in the native state's order (they
   * keep their numbers across execve). Between processes they come in that
   * order over the socket instead.
   */
  fds?: number[];
  /**
   * Kept in systemd's file descriptor store only (fdstore.ts): when it was
   * saved (ms since the epoch), and each descriptor's device:inode in the
   * native state's order (systemd passes them back in an order of its own).
   */
  fdStore?: { savedAtMs: number; ids: string[] };
  /**
   * Between processes only, for the successor's `handover timing:` line: when
   * the old bus froze (ms since the epoch, fractions) and how long freezing took.
   */
  frozen?: { atMs: number; freezeMs: number };
}

export interface Container {
  control: ControlState;
  native: Buffer;
}

export function encodeContainer(c: Container): Buffer {
  const json = Buffer.from(JSON.stringify(c.control), 'utf8');
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(CONTAINER_VERSION, 8);
  head.writeUInt32LE(json.length, 12);
  head.writeBigUInt64LE(BigInt(c.native.length), 16);
  return Buffer.concat([head, json, c.native]);
}

export class FormatError extends Error {}

export function decodeContainer(buf: Buffer): Container {
  if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC)) throw new FormatError('not a kdbus-bridge handover state');
  const version = buf.readUInt32LE(8);
  if (version > CONTAINER_VERSION) {
    throw new FormatError(`handover state version ${version} is newer than this version reads (${CONTAINER_VERSION})`);
  }
  const jsonLength = buf.readUInt32LE(12);
  const nativeLength = Number(buf.readBigUInt64LE(16));
  if (HEADER + jsonLength + nativeLength !== buf.length) throw new FormatError('handover state is truncated or padded');
  let control: ControlState;
  try {
    control = JSON.parse(buf.subarray(HEADER, HEADER + jsonLength).toString('utf8')) as ControlState;
  } catch (e) {
    throw new FormatError(`handover control state does not parse: ${(e as Error).message}`);
  }
  if (typeof control.version !== 'number' || control.version > CONTROL_VERSION) {
    throw new FormatError(`handover control state version ${String(control.version)} is newer than this version reads (${CONTROL_VERSION})`);
  }
  return { control, native: buf.subarray(HEADER + jsonLength) };
}
