// Marshalling for the driver, through dbus-next: decoding call arguments and
// encoding what the bus answers. Off the hot path by construction.
// dbus-next is loaded on first use, not at start-up: a bus prints its
// address before anyone has called it. Only the parts the driver uses: the
// package's entry point loads a whole client.
/* eslint-disable @typescript-eslint/no-var-requires */
interface DBusNext {
  DBusBuffer: new (body: Buffer, offset: number, endianness: number) => { read(signature: string): unknown };
  marshallMessage(raw: Record<string, unknown>): [Buffer, number[]];
  Variant: new (signature: string, value: unknown) => unknown;
}

let lib: DBusNext | undefined;

function dbusNext(): DBusNext {
  lib ??= {
    DBusBuffer: require('dbus-next/lib/dbus-buffer'),
    marshallMessage: require('dbus-next/lib/marshall-compat').marshallMessage,
    Variant: require('dbus-next/lib/variant').Variant,
  };
  return lib;
}

/** Loads the marshaller now, e.g. once the bus is up and idle. */
export function preloadCodec(): void {
  dbusNext();
}

/** A value of type `signature` inside a variant. */
export function variant(signature: string, value: unknown): unknown {
  return new (dbusNext().Variant)(signature, value);
}

export const BUS_NAME = 'org.freedesktop.DBus';
export const BUS_PATH = '/org/freedesktop/DBus';

export enum MessageType {
  MethodCall = 1,
  MethodReturn = 2,
  Error = 3,
  Signal = 4,
}

export const NO_REPLY_EXPECTED = 0x1;

/** Decodes a body as dbus-next's marshaller format (arrays of values). */
export function decodeBody(signature: string, body: Buffer, bigEndian: boolean): unknown[] {
  if (signature === '') return [];
  const buf = new (dbusNext().DBusBuffer)(body, 0, bigEndian ? 66 : 108);
  return buf.read(signature) as unknown[];
}

interface Outgoing {
  type: MessageType;
  destination?: string;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  signature?: string;
  body?: unknown[];
}

export interface Encoded {
  bytes: Buffer;
  /** File descriptors the message carries (borrowed: the addon duplicates them). */
  fds: number[];
}

/** A complete message from the bus; the serial is a placeholder the addon replaces. */
export function encode(msg: Outgoing): Encoded {
  const raw: Record<string, unknown> = {
    type: msg.type,
    serial: 1,
    flags: NO_REPLY_EXPECTED,
    sender: BUS_NAME,
    destination: msg.destination,
    path: msg.path,
    interface: msg.interface,
    member: msg.member,
    errorName: msg.errorName,
    replySerial: msg.replySerial,
    signature: msg.signature ?? '',
    body: msg.body ?? [],
  };
  const [bytes, fds] = dbusNext().marshallMessage(raw);
  return { bytes, fds };
}
