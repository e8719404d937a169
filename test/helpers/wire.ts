// Messages built byte by byte, so a test can send what no client library
// would: unknown message types, unknown or missing header fields, bodies
// that do not match the method. Marshalling itself is dbus-next's.
/* eslint-disable @typescript-eslint/no-var-requires */
const marshall = require('dbus-next/lib/marshall') as (signature: string, data: unknown[], offset?: number, fds?: number[]) => Buffer;

export const MessageType = { MethodCall: 1, MethodReturn: 2, Error: 3, Signal: 4 } as const;
export const Field = {
  Path: 1,
  Interface: 2,
  Member: 3,
  ErrorName: 4,
  ReplySerial: 5,
  Destination: 6,
  Sender: 7,
  Signature: 8,
  UnixFds: 9,
} as const;
export const NO_REPLY_EXPECTED = 0x1;

/** A header field: code, the signature of its variant, its value. */
export type HeaderField = [number, string, unknown];

export interface RawMessage {
  type: number;
  flags?: number;
  serial: number;
  fields: HeaderField[];
  /** Body signature and values in dbus-next's marshaller format; the SIGNATURE field is not added for you. */
  bodySignature?: string;
  body?: unknown[];
}

export function encodeMessage(m: RawMessage): Buffer {
  const body = m.bodySignature ? marshall(m.bodySignature, m.body ?? []) : Buffer.alloc(0);
  const fields = m.fields.map(([code, sig, value]) => [code, [sig, value]]);
  const header = marshall('yyyyuua(yv)', [0x6c, m.type, m.flags ?? 0, 1, body.length, m.serial, fields]);
  const padded = Buffer.alloc((header.length + 7) & ~7);
  header.copy(padded);
  return Buffer.concat([padded, body]);
}

/** The usual header of a method call. */
export function callFields(destination: string | undefined, path: string | undefined, iface: string | undefined, member: string | undefined, signature = ''): HeaderField[] {
  const f: HeaderField[] = [];
  if (path !== undefined) f.push([Field.Path, 'o', path]);
  if (iface !== undefined) f.push([Field.Interface, 's', iface]);
  if (member !== undefined) f.push([Field.Member, 's', member]);
  if (destination !== undefined) f.push([Field.Destination, 's', destination]);
  if (signature !== '') f.push([Field.Signature, 'g', signature]);
  return f;
}
