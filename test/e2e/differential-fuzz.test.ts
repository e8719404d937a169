// Differential fuzzing of the message path: the same sequence of random
// valid and mutated messages goes from a raw sender to a raw receiver on the
// bus under test and on dbus-daemon; what the receiver gets (headers and
// body bytes) and what the sender is told (replies, error names, a
// disconnect) must be the same. DIFFERENTIAL_FUZZ_SEED and
// DIFFERENTIAL_FUZZ_COUNT run other or longer sequences
// (test/differential-fuzz runs many seeds).
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { RunningBus, sessionLikeConfig, startBus } from '../helpers/bus';
import { REFERENCE_DAEMON } from '../helpers/differential';
import { MessageGenerator, prng } from '../helpers/fuzz-messages';
import { RawClient } from '../helpers/raw';
import { callFields, encodeMessage, Field, MessageType } from '../helpers/wire';

const SEED = Number(process.env.DIFFERENTIAL_FUZZ_SEED ?? 20261204);
const COUNT = Number(process.env.DIFFERENTIAL_FUZZ_COUNT ?? 250);
const BUS = 'org.freedesktop.DBus';

interface Parsed {
  type: number;
  flags: number;
  fields: Record<number, string | number>;
  body: Buffer;
}

function parse(msg: Buffer): Parsed {
  const le = msg[0] === 0x6c;
  const u32 = (at: number) => (le ? msg.readUInt32LE(at) : msg.readUInt32BE(at));
  const fieldsLen = u32(12);
  const fields: Record<number, string | number> = {};
  let pos = 16;
  const end = 16 + fieldsLen;
  while (pos < end) {
    pos = (pos + 7) & ~7;
    const code = msg[pos];
    const sigLen = msg[pos + 1];
    const sig = msg.subarray(pos + 2, pos + 2 + sigLen).toString();
    pos += 3 + sigLen;
    if (sig === 's' || sig === 'o') {
      pos = (pos + 3) & ~3;
      const n = u32(pos);
      fields[code] = msg.subarray(pos + 4, pos + 4 + n).toString();
      pos += 5 + n;
    } else if (sig === 'g') {
      const n = msg[pos];
      fields[code] = msg.subarray(pos + 1, pos + 1 + n).toString();
      pos += 2 + n;
    } else if (sig === 'u') {
      pos = (pos + 3) & ~3;
      fields[code] = u32(pos);
      pos += 4;
    } else {
      throw new Error(`the bus sent a header field ${code} of type ${sig}`);
    }
  }
  return { type: msg[1], flags: msg[2], fields, body: msg.subarray(msg.length - u32(4)) };
}

/** A registered connection driven byte by byte. */
class RawPeer {
  name = '';
  private serial = 1;
  private constructor(readonly raw: RawClient) {}

  static async connect(address: string): Promise<RawPeer> {
    const peer = new RawPeer(await RawClient.open(address));
    await peer.raw.authenticate();
    const hello = peer.nextSerial();
    peer.raw.write(encodeMessage({ type: MessageType.MethodCall, serial: hello, fields: callFields(BUS, '/org/freedesktop/DBus', BUS, 'Hello') }));
    for (const m of await peer.until(hello)) {
      if (m.fields[Field.ReplySerial] === hello) peer.name = stringBody(m);
    }
    if (!peer.name) throw new Error('no answer to Hello');
    return peer;
  }

  nextSerial(): number {
    return this.serial++;
  }

  async call(member: string, signature = '', body: unknown[] = [], iface = BUS): Promise<Parsed[]> {
    const serial = this.nextSerial();
    this.raw.write(encodeMessage({
      type: MessageType.MethodCall, serial, fields: callFields(BUS, '/org/freedesktop/DBus', iface, member, signature), bodySignature: signature, body,
    }));
    return this.until(serial);
  }

  /** Everything that arrives up to and including the reply to `serial`. */
  async until(serial: number): Promise<Parsed[]> {
    const got: Parsed[] = [];
    for (;;) {
      const msg = await this.raw.readMessage(20000);
      if (msg === null) return got;
      const p = parse(msg);
      got.push(p);
      if (p.fields[Field.ReplySerial] === serial && (p.type === 2 || p.type === 3)) return got;
    }
  }

  /** A Ping round trip: what the bus sent before its reply, without the reply. */
  async sync(): Promise<{ got: Parsed[]; disconnected: boolean }> {
    if (this.raw.closed) return { got: [], disconnected: true };
    const got = await this.call('Ping', '', [], 'org.freedesktop.DBus.Peer');
    const last = got[got.length - 1];
    const replied = last !== undefined && last.fields[Field.Sender] === BUS && last.type === 2 && last.body.length === 0;
    return { got: replied ? got.slice(0, -1) : got, disconnected: !replied || this.raw.closed };
  }

  close(): void {
    this.raw.destroy();
  }
}

function stringBody(m: Parsed): string {
  const n = m.body.readUInt32LE(0);
  return m.body.subarray(4, 4 + n).toString();
}

interface Side {
  label: string;
  bus: RunningBus;
  sender: RawPeer;
  receiver: RawPeer;
}

let dir: string;
const sides: Side[] = [];

// No reply times out while the test runs: a NoReply would come at a time
// of each bus's choosing.
const CONFIG = () => sessionLikeConfig('{dir}', '<limit name="reply_timeout">600000</limit>');

async function startSide(label: string, daemon?: string): Promise<Side> {
  const bus = await startBus({ config: CONFIG(), daemon });
  const receiver = await RawPeer.connect(bus.address);
  await receiver.call('RequestName', 'su', ['com.example.Receiver', 4]);
  await receiver.call('AddMatch', 's', ["type='signal'"]);
  const sender = await RawPeer.connect(bus.address);
  await receiver.sync();
  return { label, bus, sender, receiver };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kdbus-bridge-fuzz-'));
  sides.push(await startSide('tested'));
  sides.push(await startSide('reference', REFERENCE_DAEMON));
}, 60000);

afterAll(async () => {
  for (const s of sides) {
    s.sender.close();
    s.receiver.close();
    await s.bus.stop();
  }
  rmSync(dir, { recursive: true, force: true });
});

/** What a message looks like to compare: names by role, serials left out, error texts left out. */
function comparable(side: Side, messages: Parsed[]): unknown[] {
  const roles = new Map([[side.sender.name, ':sender'], [side.receiver.name, ':receiver']]);
  const name = (v: string | number | undefined) => (typeof v === 'string' ? roles.get(v) ?? (/^:\d+\.\d+$/.test(v) ? ':unique' : v) : v);
  return messages.map((m) => {
    const fields: Record<string, unknown> = {};
    for (const [code, v] of Object.entries(m.fields)) {
      if (Number(code) === Field.ReplySerial) continue;
      fields[code] = Number(code) === Field.Sender || Number(code) === Field.Destination ? name(v) : v;
    }
    let body: unknown = m.body.toString('hex');
    if (m.fields[Field.Sender] === BUS) {
      // The bus's own messages: strings by role, an error's text left out.
      body = m.type === 3 ? '(text)' : m.fields[Field.Signature] === 'sss' ? readStrings(m.body, 3).map(name) : m.fields[Field.Signature] === 's' ? [name(stringBody(m))] : body;
    }
    return { type: m.type, flags: m.flags, fields, body };
  });
}

function readStrings(body: Buffer, n: number): string[] {
  const out: string[] = [];
  let pos = 0;
  for (let i = 0; i < n; i++) {
    pos = (pos + 3) & ~3;
    const len = body.readUInt32LE(pos);
    out.push(body.subarray(pos + 4, pos + 4 + len).toString());
    pos += 5 + len;
  }
  return out;
}

async function step(side: Side, bytes: (receiver: string) => Buffer): Promise<unknown> {
  side.sender.raw.write(bytes(side.receiver.name));
  const told = await side.sender.sync();
  const got = await side.receiver.sync();
  const outcome = {
    sender: { disconnected: told.disconnected, told: comparable(side, told.got) },
    // Name signals about senders coming and going are timed by connection
    // set-up and tear-down, not by the message path.
    receiver: { disconnected: got.disconnected, got: comparable(side, got.got.filter((m) => !(m.type === 4 && m.fields[Field.Sender] === BUS))) },
  };
  if (told.disconnected) {
    side.sender.close();
    side.sender = await RawPeer.connect(side.bus.address);
    // The receiver's match rule sees the new sender arrive: part of no step.
    await side.receiver.sync();
  }
  return outcome;
}

interface Outcome {
  sender: { disconnected: boolean; told: unknown[] };
  receiver: { disconnected: boolean; got: { type: number; fields: Record<string, unknown> }[] };
}

describe('the message path behaves as dbus-daemon on random messages', () => {
  test(`${COUNT} messages from seed ${SEED}`, async () => {
    const differences: unknown[] = [];
    const gens = sides.map(() => new MessageGenerator(prng(SEED), ':receiver'));
    for (let i = 0; i < COUNT; i++) {
      const cases = gens.map((g) => g.next());
      const outcomes: unknown[] = [];
      for (const [k, side] of sides.entries()) {
        const c = cases[k];
        outcomes.push(await step(side, (receiver) => {
          const named = {
            ...c.message,
            serial: side.sender.nextSerial(),
            fields: c.message.fields.map(([code, t, v]) => [code, t, v === ':receiver' ? receiver : v] as [number, string, unknown]),
          };
          const buf = encodeMessage(named);
          for (const [at, value] of c.mutations) if (at < buf.length) buf[at] = value;
          return buf;
        }));
      }
      const [tested, reference] = outcomes as Outcome[];
      if (JSON.stringify(tested) === JSON.stringify(reference)) continue;
      differences.push({ step: i, message: cases[0].describe, tested, reference });
      if (differences.length >= 5) break;
    }
    expect(differences).toEqual([]);
  }, 600000);
});
