// The interfaces of the bus driver object: names, argument types, where they
// answer, and the signals and properties they have. The driver dispatches on
// this table and introspection is generated from it.
export interface MethodSpec {
  name: string;
  in: string;
  out: string;
  /** Answers at any object path, not only /org/freedesktop/DBus. */
  anyPath?: boolean;
  /** Only for the bus's own uid and root. */
  privileged?: boolean;
}

export interface InterfaceSpec {
  name: string;
  methods: MethodSpec[];
  /** Introspection text for the signals, as dbus-daemon writes it. */
  signals?: string;
  properties?: { name: string; type: string }[];
  /** Some of its methods answer at any object path. */
  anyPath?: boolean;
  /** Left out of the Interfaces property. */
  uninteresting?: boolean;
}

const anyPath = (name: string, input: string, output: string): MethodSpec => ({ name, in: input, out: output, anyPath: true });

export const INTERFACES: InterfaceSpec[] = [
  {
    name: 'org.freedesktop.DBus',
    anyPath: true,
    uninteresting: true,
    methods: [
      anyPath('Hello', '', 's'),
      anyPath('RequestName', 'su', 'u'),
      anyPath('ReleaseName', 's', 'u'),
      anyPath('StartServiceByName', 'su', 'u'),
      { name: 'UpdateActivationEnvironment', in: 'a{ss}', out: '', privileged: true },
      anyPath('NameHasOwner', 's', 'b'),
      anyPath('ListNames', '', 'as'),
      anyPath('ListActivatableNames', '', 'as'),
      anyPath('AddMatch', 's', ''),
      anyPath('RemoveMatch', 's', ''),
      anyPath('GetNameOwner', 's', 's'),
      anyPath('ListQueuedOwners', 's', 'as'),
      anyPath('GetConnectionUnixUser', 's', 'u'),
      anyPath('GetConnectionUnixProcessID', 's', 'u'),
      anyPath('GetAdtAuditSessionData', 's', 'ay'),
      anyPath('GetConnectionSELinuxSecurityContext', 's', 'ay'),
      anyPath('ReloadConfig', '', ''),
      anyPath('GetId', '', 's'),
      anyPath('GetConnectionCredentials', 's', 'a{sv}'),
    ],
    properties: [
      { name: 'Features', type: 'as' },
      { name: 'Interfaces', type: 'as' },
    ],
    signals: [
      '    <signal name="NameOwnerChanged">',
      '      <arg type="s"/>',
      '      <arg type="s"/>',
      '      <arg type="s"/>',
      '    </signal>',
      '    <signal name="NameLost">',
      '      <arg type="s"/>',
      '    </signal>',
      '    <signal name="NameAcquired">',
      '      <arg type="s"/>',
      '    </signal>',
      '    <signal name="ActivatableServicesChanged">',
      '    </signal>',
    ].join('\n'),
  },
  {
    name: 'org.freedesktop.DBus.Properties',
    uninteresting: true,
    methods: [
      { name: 'Get', in: 'ss', out: 'v' },
      { name: 'GetAll', in: 's', out: 'a{sv}' },
      { name: 'Set', in: 'ssv', out: '' },
    ],
    signals: [
      '    <signal name="PropertiesChanged">',
      '      <arg type="s" name="interface_name"/>',
      '      <arg type="a{sv}" name="changed_properties"/>',
      '      <arg type="as" name="invalidated_properties"/>',
      '    </signal>',
    ].join('\n'),
  },
  {
    name: 'org.freedesktop.DBus.Introspectable',
    anyPath: true,
    uninteresting: true,
    methods: [anyPath('Introspect', '', 's')],
  },
  {
    name: 'org.freedesktop.DBus.Monitoring',
    methods: [{ name: 'BecomeMonitor', in: 'asu', out: '', privileged: true }],
  },
  {
    name: 'org.freedesktop.DBus.Debug.Stats',
    methods: [
      { name: 'GetStats', in: '', out: 'a{sv}' },
      { name: 'GetConnectionStats', in: 's', out: 'a{sv}' },
      { name: 'GetAllMatchRules', in: '', out: 'a{sas}' },
    ],
  },
  {
    // kdbus's capabilities for D-Bus clients (README: "The org.kdbusbridge.Bus1 extension").
    name: 'org.kdbusbridge.Bus1',
    methods: [
      { name: 'ByeBye', in: '', out: '' },
      { name: 'SetAttachFlags', in: 'u', out: '' },
      { name: 'GetConnectionMetadata', in: 'su', out: 'a{sv}' },
      { name: 'SetSendPriority', in: 'x', out: '' },
      { name: 'SetReceivePriority', in: 'b', out: '' },
    ],
  },
  {
    name: 'org.freedesktop.DBus.Peer',
    anyPath: true,
    uninteresting: true,
    methods: [anyPath('GetMachineId', '', 's'), anyPath('Ping', '', '')],
  },
];

/** Splits a signature into its complete types. */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  const one = (): void => {
    const c = sig[i++];
    if (c === 'a') one();
    else if (c === '(' || c === '{') {
      const close = c === '(' ? ')' : '}';
      while (i < sig.length && sig[i] !== close) one();
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

/** The Interfaces property: the driver's optional interfaces. */
export function advertisedInterfaces(): string[] {
  return INTERFACES.filter((i) => !i.uninteresting).map((i) => i.name);
}
