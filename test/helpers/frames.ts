/* eslint-disable @typescript-eslint/no-var-requires */
const { marshallMessage } = require('dbus-next/lib/marshall-compat');

/** Splits a D-Bus byte stream into messages by their length fields alone. */
export interface Frame {
  type: number;
  flags: number;
  serial: number;
  length: number;
}

export class FrameCounter {
  private pending: Buffer = Buffer.alloc(0);
  readonly frames: Frame[] = [];

  /** Feeds bytes read after the authentication conversation. */
  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    while (this.pending.length - at >= 16) {
      const little = this.pending[at] === 0x6c;
      const u32 = (o: number) => (little ? this.pending.readUInt32LE(at + o) : this.pending.readUInt32BE(at + o));
      const fields = u32(12);
      const length = 16 + Math.ceil(fields / 8) * 8 + u32(4);
      if (this.pending.length - at < length) break;
      this.frames.push({ type: this.pending[at + 1], flags: this.pending[at + 2], serial: u32(8), length });
      at += length;
    }
    this.pending = this.pending.subarray(at);
  }

  count(type: number): number {
    return this.frames.filter((f) => f.type === type).length;
  }
}

/** One message marshalled by dbus-next, with defaults for what `fields` leaves out. */
export function marshall(fields: Record<string, unknown>): Buffer {
  const [bytes] = marshallMessage({ flags: 0, signature: '', body: [], ...fields }) as [Buffer, number[]];
  return bytes;
}
