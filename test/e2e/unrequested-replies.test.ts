// A method return or error that answers no pending call: the policy decides
// whether it is delivered, as in dbus-daemon. Checked side by side with
// dbus-daemon under a policy that allows them and one that allows only
// requested replies (as the system bus's does).
import { normaliser, observe, Pair, Side, startPair } from '../helpers/differential';
import { sync } from '../helpers/client';
import { Field, MessageType, RawMessage } from '../helpers/wire';

const ONLY_REQUESTED = `<policy context="default">
  <deny send_type="method_return"/>
  <deny send_type="error"/>
  <allow send_requested_reply="true" send_type="method_return"/>
  <allow send_requested_reply="true" send_type="error"/>
</policy>`;

const unrequested = (type: number, to: string): RawMessage => ({
  type,
  serial: 0,
  fields: [
    [Field.ReplySerial, 'u', 4242],
    [Field.Destination, 's', to],
    ...(type === MessageType.Error ? ([[Field.ErrorName, 's', 'com.example.Error.Late']] as [number, string, unknown][]) : []),
  ],
});

async function outcome(side: Side, type: number): Promise<unknown> {
  const [receiver, sender] = side.clients;
  const first = receiver.received.length;
  const told = await observe(sender, unrequested(type, receiver.uniqueName), normaliser(side.clients, ['receiver', 'sender'], side.bus.pid));
  await sync(receiver.bus);
  const got = receiver.received.slice(first).filter((m) => m.sender !== 'org.freedesktop.DBus').map(normaliser(side.clients, ['receiver', 'sender'], side.bus.pid));
  return { told, got };
}

describe.each([
  ['a policy that allows them', ''],
  ['a policy that allows only requested replies', ONLY_REQUESTED],
])('unrequested replies under %s', (_label, policy) => {
  let pair: Pair;
  beforeAll(async () => {
    pair = await startPair(2, policy);
  }, 60000);
  afterAll(async () => {
    await pair?.stop();
  });

  test.each([
    ['method return', MessageType.MethodReturn],
    ['error', MessageType.Error],
  ])('%s: as dbus-daemon', async (_name, type) => {
    const tested = await outcome(pair.tested, type);
    const reference = await outcome(pair.reference, type);
    expect(tested).toEqual(reference);
    // The case is not vacuous: one of the two policies delivers, one refuses.
    const t = tested as { told: { replies: unknown[] }; got: unknown[] };
    expect(policy === '' ? t.got.length : t.told.replies.length).toBe(1);
  });
});
