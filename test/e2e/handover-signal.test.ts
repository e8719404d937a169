import { readFileSync } from 'fs';
import { native } from '../../bridge/native';
import { startBus } from '../helpers/bus';
import { callDriver, connect } from '../helpers/client';
import { until } from '../helpers/processes';

// A SIGUSR2 that reaches a bus while it is still starting its new image
// (docs/handover.md, "Failure handling") must neither kill it nor be lost:
// it is kept, and the bus upgrades again once it serves.

const canSnapshot = typeof (native.Bus.prototype as { freeze?: unknown }).freeze === 'function'
  && typeof (native as unknown as { restore?: unknown }).restore === 'function';

const SIGUSR2_BIT = 1n << 11n; // signal 12, bit 11 of /proc's signal masks

function catchesUsr2(pid: number): boolean | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status);
  return m !== null && (BigInt(`0x${m[1]}`) & SIGUSR2_BIT) !== 0n;
}

/** Polls without yielding: the new image's window without a handler lasts only as long as Node.js takes to start. */
function spinUntil(pred: () => boolean, timeoutMs: number): boolean {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) if (pred()) return true;
  return false;
}

(canSnapshot ? test : test.skip)('a SIGUSR2 sent as soon as the new image catches it is kept and acted on', async () => {
  const bus = await startBus();
  let err = '';
  bus.process.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const upgrades = (): number => (err.match(/Upgraded in place/g) ?? []).length;
  try {
    const a = await connect(bus.address);
    await callDriver(a.bus, 'RequestName', 'su', ['org.example.Kept', 4]);
    expect(await until(() => catchesUsr2(bus.pid) === true, 10000)).toBe(true);
    process.kill(bus.pid, 'SIGUSR2');
    // The old image checks the new program first, then execs: the handler is gone...
    expect(spinUntil(() => catchesUsr2(bus.pid) !== true, 30000)).toBe(true);
    // ...until the new image's first module puts one in, well before the bus serves.
    expect(spinUntil(() => catchesUsr2(bus.pid) !== false, 30000)).toBe(true);
    process.kill(bus.pid, 'SIGUSR2');
    expect(upgrades()).toBe(0);
    expect(await until(() => upgrades() >= 2, 60000)).toBe(true);
    expect(bus.process.exitCode).toBeNull();
    expect(bus.process.signalCode).toBeNull();
    expect((await callDriver(a.bus, 'GetNameOwner', 's', ['org.example.Kept'])).body[0]).toBe(a.uniqueName);
    await a.close();
  } finally {
    await bus.stop();
  }
}, 120000);
