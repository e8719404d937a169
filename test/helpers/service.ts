import { ChildProcess } from 'child_process';
import { resolve } from 'path';
import { spawnTracked, terminate, waitForLine } from './processes';

// The distribution's interpreter, which is the one that has python3-dbus.
export const PYTHON = '/usr/bin/python3';

export function fixture(name: string): string {
  return resolve(__dirname, '..', 'fixtures', name);
}

export const TEST_INTERFACE = 'com.example.Test';
export const TEST_PATH = '/com/example/Test';

export interface RunningService {
  name: string;
  uniqueName: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts the python3-dbus echo service and waits until it owns `name`. */
export async function startService(address: string, name: string): Promise<RunningService> {
  const child = spawnTracked(PYTHON, [fixture('echo_service.py'), address, name]);
  let line: string;
  try {
    line = await waitForLine(child, /^ready /);
  } catch (e) {
    await terminate(child);
    throw e;
  }
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    name,
    uniqueName: line.trim().split(' ')[1],
    process: child,
    stop: () => terminate(child),
  };
}
