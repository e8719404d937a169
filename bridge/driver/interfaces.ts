// The interfaces of the bus driver object: names, argument types and the
// signals and properties it has. The driver dispatches on this table.
export interface MethodSpec {
  name: string;
  in: string[];
  inNames?: string[];
  out: string[];
}

export interface InterfaceSpec {
  name: string;
  methods: MethodSpec[];
  signals?: { name: string; args: string[] }[];
  properties?: { name: string; type: string }[];
}

const m = (name: string, input: string, output: string): MethodSpec => ({
  name,
  in: splitSignature(input),
  out: splitSignature(output),
});

/** Splits a signature into its complete types. */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  const one = (): void => {
    const c = sig[i++];
    if (c === 'a') one();
    else if (c === '(' || c === '{') {
      const close = c === '(' ? ')' : '}';
      while (sig[i] !== close) one();
      i++;
    }
  };
  while (i < sig.length) {
    const start = i;
    one();
    out.push(sig.slice(start, i));
  }
  return out;
}

export const INTERFACES: InterfaceSpec[] = [
  {
    name: 'org.freedesktop.DBus',
    methods: [
      m('Hello', '', 's'),
      m('RequestName', 'su', 'u'),
      m('ReleaseName', 's', 'u'),
      m('StartServiceByName', 'su', 'u'),
      m('UpdateActivationEnvironment', 'a{ss}', ''),
      m('NameHasOwner', 's', 'b'),
      m('ListNames', '', 'as'),
      m('ListActivatableNames', '', 'as'),
      m('AddMatch', 's', ''),
      m('RemoveMatch', 's', ''),
      m('GetNameOwner', 's', 's'),
      m('ListQueuedOwners', 's', 'as'),
      m('GetConnectionUnixUser', 's', 'u'),
      m('GetConnectionUnixProcessID', 's', 'u'),
      m('GetAdtAuditSessionData', 's', 'ay'),
      m('GetConnectionSELinuxSecurityContext', 's', 'ay'),
      m('ReloadConfig', '', ''),
      m('GetId', '', 's'),
      m('GetConnectionCredentials', 's', 'a{sv}'),
    ],
    signals: [
      { name: 'NameOwnerChanged', args: ['s', 's', 's'] },
      { name: 'NameLost', args: ['s'] },
      { name: 'NameAcquired', args: ['s'] },
    ],
    properties: [
      { name: 'Features', type: 'as' },
      { name: 'Interfaces', type: 'as' },
    ],
  },
  {
    name: 'org.freedesktop.DBus.Properties',
    methods: [m('Get', 'ss', 'v'), m('GetAll', 's', 'a{sv}'), m('Set', 'ssv', '')],
    signals: [{ name: 'PropertiesChanged', args: ['s', 'a{sv}', 'as'] }],
  },
  { name: 'org.freedesktop.DBus.Introspectable', methods: [m('Introspect', '', 's')] },
  { name: 'org.freedesktop.DBus.Peer', methods: [m('GetMachineId', '', 's'), m('Ping', '', '')] },
];
