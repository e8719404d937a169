import { CONTAINER_VERSION, CONTROL_VERSION, ControlState, decodeContainer, encodeContainer, FormatError, MAGIC } from '../../bridge/handover/format';
import { splitHandoverArgs } from '../../bridge/handover';

const control: ControlState = {
  version: CONTROL_VERSION,
  argv: ['--session', '--nofork'],
  options: {
    configFile: '/usr/share/dbus-1/session.conf',
    fork: 'never',
    writePidfile: true,
    syslog: 'config',
    syslogOnly: false,
    systemdActivation: false,
  },
  guid: '0123456789abcdef0123456789abcdef',
  addresses: ['unix:path=/run/user/1000/bus,guid=0123456789abcdef0123456789abcdef'],
  log: { stderr: true, syslog: false, prefix: '' },
  daemonized: false,
  activation: {
    environment: { DISPLAY: ':0' },
    pending: [{ name: 'org.example.Late', requester: "':1.4' (uid=1000 pid=7)", pid: 42, deadlineNs: '123456789000', waiters: [{ sender: ':1.4', serial: 9, flags: 0 }] }],
    children: [42, 43],
  },
  fds: [5, 6, 7],
};

test('a container reads back as written, native bytes untouched', () => {
  const native = Buffer.from([0, 1, 2, 255, 254]);
  const back = decodeContainer(encodeContainer({ control, native }));
  expect(back.control).toEqual(control);
  expect(Buffer.compare(back.native, native)).toBe(0);
});

test('the header is the documented one', () => {
  const buf = encodeContainer({ control, native: Buffer.alloc(3) });
  expect(buf.subarray(0, 8).equals(MAGIC)).toBe(true);
  expect(buf.readUInt32LE(8)).toBe(CONTAINER_VERSION);
  const json = buf.readUInt32LE(12);
  expect(Number(buf.readBigUInt64LE(16))).toBe(3);
  expect(JSON.parse(buf.subarray(24, 24 + json).toString()).guid).toBe(control.guid);
});

test('later versions, other files and damaged containers are refused with a reason', () => {
  const good = encodeContainer({ control, native: Buffer.alloc(0) });
  const newer = Buffer.from(good);
  newer.writeUInt32LE(CONTAINER_VERSION + 1, 8);
  expect(() => decodeContainer(newer)).toThrow(/version 2 is newer than this version reads \(1\)/);
  const newerControl = encodeContainer({ control: { ...control, version: CONTROL_VERSION + 1 }, native: Buffer.alloc(0) });
  expect(() => decodeContainer(newerControl)).toThrow(/control state version 2 is newer/);
  expect(() => decodeContainer(Buffer.from('#!/bin/sh\necho not a state file\n'))).toThrow(FormatError);
  expect(() => decodeContainer(good.subarray(0, good.length - 1))).toThrow(/truncated/);
});

test('handover options are taken off the command line, the rest left for dbus-daemon\'s parser', () => {
  expect(splitHandoverArgs(['--session', '--handover-socket=/run/x', '--print-address', '--take-over=/run/y'])).toEqual({
    rest: ['--session', '--print-address'],
    handoverSocket: '/run/x',
    takeOver: '/run/y',
  });
  expect(splitHandoverArgs(['--check-handover-state=3']).checkState).toBe(3);
});
