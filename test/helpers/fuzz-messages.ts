// Random messages for differential fuzzing of the message path: valid ones
// of every type with random signatures, nesting, flags and header fields,
// and mutated ones. Deterministic for a given seed.
import { Field, HeaderField, RawMessage } from './wire';

/** mulberry32: small, fast and the same everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzCase {
  message: RawMessage;
  /** Byte offset and value to overwrite after encoding, when mutated. */
  mutations: [number, number][];
  describe: string;
}

const BASIC = 'ybnqiuxtdsog';

export class MessageGenerator {
  constructor(private readonly rand: () => number, private readonly receiver: string) {}

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  private chance(p: number): boolean {
    return this.rand() < p;
  }

  type(depth = 0): string {
    if (depth >= 4 || this.chance(0.55)) return this.pick([...BASIC]);
    switch (this.int(4)) {
      case 0:
        return `a${this.type(depth + 1)}`;
      case 1: {
        const n = 1 + this.int(3);
        let t = '(';
        for (let i = 0; i < n; i++) t += this.type(depth + 1);
        return `${t})`;
      }
      case 2:
        return `a{${this.pick([...BASIC])}${this.type(depth + 1)}}`;
      default:
        return 'v';
    }
  }

  private string(): string {
    const alphabet = ['a', 'b', 'Z', '0', ' ', '.', '/', 'é', '€', '𝄞', "'"];
    let s = '';
    const n = this.int(12);
    for (let i = 0; i < n; i++) s += this.pick(alphabet);
    return s;
  }

  private path(): string {
    const n = this.int(4);
    if (n === 0) return '/';
    let p = '';
    for (let i = 0; i < n; i++) p += `/${this.pick(['a', 'B_1', 'x9', 'org'])}`;
    return p;
  }

  value(t: string): unknown {
    switch (t[0]) {
      case 'y':
        return this.int(256);
      case 'b':
        return this.chance(0.5);
      case 'n':
        return this.int(65536) - 32768;
      case 'q':
        return this.int(65536);
      case 'i':
        return this.int(2 ** 31) * (this.chance(0.5) ? -1 : 1);
      case 'u':
        return this.int(2 ** 32);
      case 'x':
        return BigInt(this.int(2 ** 31)) * BigInt(this.int(2 ** 31)) * (this.chance(0.5) ? -1n : 1n);
      case 't':
        return BigInt(this.int(2 ** 31)) * BigInt(this.int(2 ** 32));
      case 'd':
        return this.pick([0, -1.5, 3.25e100, Number.MIN_VALUE, this.rand()]);
      case 's':
        return this.string();
      case 'o':
        return this.path();
      case 'g':
        return this.chance(0.3) ? '' : this.type(2);
      case 'v': {
        const inner = this.type(2);
        return [inner, this.value(inner)];
      }
      case '(': {
        return this.members(t.slice(1, -1)).map((m) => this.value(m));
      }
      case 'a': {
        const elem = t.slice(1);
        const n = this.int(4);
        if (elem === 'y') return Buffer.from(Array.from({ length: n }, () => this.int(256)));
        if (elem[0] === '{') {
          const [k, v] = this.members(elem.slice(1, -1));
          return Array.from({ length: n }, () => [this.value(k), this.value(v)]);
        }
        return Array.from({ length: n }, () => this.value(elem));
      }
      default:
        throw new Error(`no value for ${t}`);
    }
  }

  /** The complete types a signature is made of. */
  members(sig: string): string[] {
    const out: string[] = [];
    let i = 0;
    while (i < sig.length) {
      const start = i;
      i = this.skipType(sig, i);
      out.push(sig.slice(start, i));
    }
    return out;
  }

  private skipType(sig: string, i: number): number {
    const c = sig[i];
    if (c === 'a') return this.skipType(sig, i + 1);
    if (c === '(' || c === '{') {
      const close = c === '(' ? ')' : '}';
      i += 1;
      while (sig[i] !== close) i = this.skipType(sig, i);
      return i + 1;
    }
    return i + 1;
  }

  next(): FuzzCase {
    const r = this.rand();
    const type = r < 0.5 ? 1 : r < 0.8 ? 4 : r < 0.87 ? 2 : r < 0.94 ? 3 : r < 0.99 ? 5 + this.int(251) : 0;
    const fields: HeaderField[] = [];
    const describe: string[] = [`type ${type}`];
    const destination = type === 4 && this.chance(0.4)
      ? undefined
      : this.pick([this.receiver, this.receiver, 'com.example.Receiver', 'com.example.Nobody', ':1.99999', 'org.freedesktop.DBus']);
    const path = this.chance(0.05) ? this.pick(['a', '/a/', '//', '']) : this.path();
    const iface = this.chance(0.05) ? this.pick(['a', '1.b', 'a..b', 'org.freedesktop.DBus.Local']) : this.chance(0.15) ? undefined : 'com.example.I';
    const member = this.chance(0.05) ? this.pick(['1M', 'a.b', '']) : this.pick(['M', 'Frob', 'GetId', 'Ping']);
    if (type === 1 || type === 4 || type >= 5) {
      fields.push([Field.Path, 'o', path]);
      if (iface !== undefined) fields.push([Field.Interface, 's', iface]);
      fields.push([Field.Member, 's', member]);
    }
    if (type === 3) fields.push([Field.ErrorName, 's', this.chance(0.05) ? 'bad' : 'com.example.Error.Failed']);
    if (type === 2 || type === 3) fields.push([Field.ReplySerial, 'u', 1 + this.int(5)]);
    if (destination !== undefined) fields.push([Field.Destination, 's', destination]);
    if (this.chance(0.1)) fields.push([Field.Sender, 's', this.pick([':1.99999', 'com.example.Forged', this.receiver])]);
    if (this.chance(0.15)) {
      const t = this.pick([...BASIC]);
      fields.push([10 + this.int(246), t, this.value(t)]);
    }
    const n = this.int(4);
    const types = Array.from({ length: n }, () => this.type());
    const bodySignature = types.join('');
    if (bodySignature.length > 255) return this.next();
    const body = types.map((t) => this.value(t));
    if (bodySignature !== '') fields.push([Field.Signature, 'g', bodySignature]);
    describe.push(`to ${destination ?? '(none)'}`, `${iface ?? '-'}.${member}`, `sig '${bodySignature}'`);
    const flags = this.int(8) | (this.chance(0.05) ? 0x80 : 0);
    describe.push(`flags ${flags}`);
    const mutations: [number, number][] = [];
    if (this.chance(0.15)) {
      // Bytes after the fixed header only (and the type, flags and version
      // bytes): the framing stays intact, so a broken message is seen as one.
      const count = 1 + this.int(3);
      for (let i = 0; i < count; i++) {
        const at = this.chance(0.1) ? 1 + this.int(3) : 16 + this.int(4096);
        mutations.push([at, this.int(256)]);
      }
      describe.push(`mutated ${JSON.stringify(mutations)}`);
    }
    return { message: { type, flags, serial: 0, fields, bodySignature, body }, mutations, describe: describe.join(' ') };
  }
}
