// An fd belongs to the message it was sent with. A raw sender passes fds
// with, split across, ahead of and beyond the messages that declare them; a
// raw receiver counts what arrives. The same is done on dbus-daemon.
import { RunningBus, startBus, daemonPath } from '../helpers/bus';
import { run } from '../helpers/processes';
import { socketPath } from '../helpers/raw';
import { fixture, PYTHON } from '../helpers/service';

const REFERENCE = '/usr/bin/dbus-daemon';

let tested: RunningBus;
let reference: RunningBus;

beforeAll(async () => {
  tested = await startBus();
  reference = await startBus({ daemon: REFERENCE });
});

afterAll(async () => {
  await tested?.stop();
  await reference?.stop();
});

interface Probe {
  sender: { disconnected: boolean; told: unknown[] };
  receiver: { got: { member: string; unix_fds: number }[]; fds: number };
}

async function probe<T = Probe>(bus: RunningBus, scenario: string, ...args: string[]): Promise<T> {
  const r = await run(PYTHON, [fixture('fd_probe.py'), socketPath(bus.address), scenario, ...args], { timeoutMs: 60000 });
  if (r.code !== 0) throw new Error(`fd_probe.py ${scenario}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const testingReference = daemonPath() === REFERENCE;

describe('unix fds belong to their message', () => {
  test.each(['with', 'split-first', 'split-last', 'index-out-of-range', 'index-without-fds'])(
    '%s: as dbus-daemon',
    async (scenario) => {
      const [a, b] = [await probe(tested, scenario), await probe(reference, scenario)];
      expect(a).toEqual(b);
      expect(a.sender.disconnected).toBe(false);
      expect(a.receiver.got.map((m) => m.member)).toEqual(['B']);
    },
  );

  test('one fd with each part of a message that declares two: both reach it', async () => {
    const a = await probe(tested, 'split');
    if (testingReference) {
      // dbus-daemon drops such a sender.
      expect(a.sender.disconnected).toBe(true);
      return;
    }
    expect(a.sender.disconnected).toBe(false);
    expect(a.receiver).toEqual({ got: [{ error: null, member: 'B', type: 1, unix_fds: 2 }], fds: 2 });
  });

  test.each([
    ['ahead', 'an fd sent with a message that declares none, then a message that declares one'],
    ['extra', 'two fds with a message that declares one, then a message that declares one'],
  ])('%s: %s ends the sender, and no fd reaches anyone', async (scenario) => {
    const a = await probe(tested, scenario);
    if (testingReference) {
      // dbus-daemon hands the stray fd to the later message.
      expect(a.sender.disconnected).toBe(false);
      return;
    }
    expect(a.sender.disconnected).toBe(true);
    expect(a.receiver.fds).toBe(0);
    expect(a.receiver.got.filter((m) => m.unix_fds > 0)).toEqual([]);
  });

  test.each([1, 2, 3])('random pieces, seed %i: each fd reaches its own message, as on dbus-daemon', async (seed) => {
    // 150 messages with 0 to 3 pipes each, cut at random with the fds on a
    // random piece; every pipe holds the name of the message it was sent with.
    const a = await probe(tested, 'random', String(seed), '150');
    const b = await probe(reference, 'random', String(seed), '150');
    expect(a).toEqual(b);
    expect(a).toEqual(expect.objectContaining({ receiver: expect.objectContaining({ fd_contents_match: true, messages: 150 }) }));
  });
});
