// Reading the metadata the bus attaches to what a connection receives once it
// asked with org.kdbusbridge.Bus1.SetAttachFlags (README: "Metadata").
import { Message, MessageBus } from 'dbus-next';
import { callBus1 } from './bus1';

/** kdbus's KDBUS_ATTACH_* bits that this bus attaches; the others answer NotSupported. */
export const Attach = {
  TIMESTAMP: 1 << 0,
  CREDS: 1 << 1,
  PIDS: 1 << 2,
  AUXGROUPS: 1 << 3,
  NAMES: 1 << 4,
  PID_COMM: 1 << 6,
  EXE: 1 << 7,
  CMDLINE: 1 << 8,
  CGROUP: 1 << 9,
  SECLABEL: 1 << 11,
} as const;

/** The header field codes the metadata travels in. */
export const MetadataField = {
  TIMESTAMP: 0xa1,
  CREDS: 0xa2,
  PIDS: 0xa3,
  AUXGROUPS: 0xa4,
  NAMES: 0xa5,
  PID_COMM: 0xa7,
  EXE: 0xa8,
  CMDLINE: 0xa9,
  CGROUP: 0xaa,
  SECLABEL: 0xac,
} as const;

/** What the bus knew of a message's sender when it delivered it. */
export interface MessageMetadata {
  /** The bus's global order of messages. */
  seqnum?: bigint;
  monotonicNs?: bigint;
  realtimeNs?: bigint;
  uid?: number;
  gid?: number;
  pid?: number;
  /** 0: the bus does not know the sending thread. */
  tid?: number;
  ppid?: number;
  groups?: number[];
  names?: string[];
  comm?: string;
  exe?: string;
  /** The arguments, split at their NULs. */
  cmdline?: string[];
  cgroup?: string;
  seclabel?: string;
}

/** Parses the header fields of a raw message (its first bytes up to the end of the fields). */
export function parseMetadataFields(raw: Buffer): MessageMetadata {
  const be = raw[0] === 0x42;
  const u32 = (at: number): number => (be ? raw.readUInt32BE(at) : raw.readUInt32LE(at));
  const u64 = (at: number): bigint => (be ? raw.readBigUInt64BE(at) : raw.readBigUInt64LE(at));
  const end = 16 + u32(12);
  const md: MessageMetadata = {};
  let p = 16;
  const align = (a: number): void => {
    p = (p + a - 1) & ~(a - 1);
  };
  const str = (): string => {
    align(4);
    const n = u32(p);
    const s = raw.toString('utf8', p + 4, p + 4 + n);
    p += 4 + n + 1;
    return s;
  };
  while (p < end) {
    align(8);
    const code = raw[p];
    const sigLen = raw[p + 1];
    const sig = raw.toString('latin1', p + 2, p + 2 + sigLen);
    p += 2 + sigLen + 1;
    if (sig === 's' || sig === 'o') {
      const s = str();
      if (code === MetadataField.PID_COMM) md.comm = s;
      else if (code === MetadataField.EXE) md.exe = s;
      else if (code === MetadataField.CGROUP) md.cgroup = s;
      else if (code === MetadataField.SECLABEL) md.seclabel = s;
    } else if (sig === 'g') {
      p += 1 + raw[p] + 1;
    } else if (sig === 'u') {
      align(4);
      p += 4;
    } else if (sig === 't' || sig === 'x') {
      align(8);
      p += 8;
    } else if (/^\(t+\)$/.test(sig)) {
      align(8);
      const v: bigint[] = [];
      for (let i = 0; i < sig.length - 2; i++, p += 8) v.push(u64(p));
      if (code === MetadataField.TIMESTAMP) [md.seqnum, md.monotonicNs, md.realtimeNs] = v;
    } else if (/^\(u+\)$/.test(sig)) {
      align(8);
      const v: number[] = [];
      for (let i = 0; i < sig.length - 2; i++, p += 4) v.push(u32(p));
      if (code === MetadataField.CREDS) [md.uid, md.gid] = v;
      if (code === MetadataField.PIDS) [md.pid, md.tid, md.ppid] = v;
    } else if (sig === 'au') {
      align(4);
      const n = u32(p);
      const v: number[] = [];
      for (let i = 0; i < n / 4; i++) v.push(u32(p + 4 + i * 4));
      p += 4 + n;
      if (code === MetadataField.AUXGROUPS) md.groups = v;
    } else if (sig === 'as') {
      align(4);
      const stop = p + 4 + u32(p);
      p += 4;
      const v: string[] = [];
      while (p < stop) v.push(str());
      if (code === MetadataField.NAMES) md.names = v;
    } else if (sig === 'ay') {
      align(4);
      const n = u32(p);
      const bytes = raw.subarray(p + 4, p + 4 + n);
      p += 4 + n;
      if (code === MetadataField.CMDLINE) md.cmdline = bytes.toString('utf8').split('\0').slice(0, -1);
    } else {
      break;  // not a field this bus writes
    }
  }
  return md;
}

const attached = new WeakMap<Message, MessageMetadata>();

/**
 * Asks the bus to attach `flags` (Attach bits) to every message this
 * connection receives, and keeps what it attaches for readMetadata(). It
 * reads the header bytes as dbus-next (0.10) takes them from its socket,
 * since dbus-next itself drops header fields it does not know.
 */
export async function enableMetadata(bus: MessageBus, flags: number): Promise<void> {
  type Stream = { read(n?: number): unknown };
  type Conn = NodeJS.EventEmitter & { stream: Stream };
  const conn = (bus as unknown as { _connection: Conn })._connection;
  const stream = conn.stream;
  if (!(stream as unknown as { kdbusBridgeTap?: boolean }).kdbusBridgeTap) {
    (stream as unknown as { kdbusBridgeTap?: boolean }).kdbusBridgeTap = true;
    // dbus-next reads a message as 16 bytes of fixed header, then the rest
    // in one read, and emits it before reading the next.
    let header: Buffer | null = null;
    let pending: MessageMetadata | null = null;
    const read = stream.read.bind(stream);
    stream.read = (n?: number): unknown => {
      const r = read(n);
      if (r === null || r === undefined) return r;
      const buf = (r as { data?: Buffer }).data ?? (r as Buffer);
      if (header === null) {
        if (n === 16) header = Buffer.from(buf);
      } else {
        pending = parseMetadataFields(Buffer.concat([header, buf]));
        header = null;
      }
      return r;
    };
    conn.prependListener('message', (msg: Message) => {
      if (pending) attached.set(msg, pending);
      pending = null;
    });
  }
  await callBus1(bus, 'SetAttachFlags', 'u', [flags]);
}

/** The metadata the bus attached to `msg` (empty when none). */
export function readMetadata(msg: Message): MessageMetadata {
  return attached.get(msg) ?? {};
}
