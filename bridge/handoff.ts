/**
 * Sockets the native launcher (kdbus-native/launcher) bound and announced
 * before it exec'd this process: their descriptors, the addresses it printed
 * for them and the GUID in those addresses. The bus serves them as they are.
 */

import { closeSync, writeSync } from 'fs';

/** Set by the launcher; see kdbus-native/launcher/main.cc. */
const HANDOFF_ENV = 'KDBUS_BRIDGE_LISTENING';
/** The pipe to the launcher's sweeper, which removes the socket files unless told otherwise. */
const SWEEPER_ENV = 'KDBUS_BRIDGE_SWEEPER_FD';

export interface Handoff {
  guid: string;
  listeners: Array<{ fd: number; address: string }>;
  sweeperFd?: number;
}

/**
 * The launcher's sockets, if it handed any over. The variable is removed at
 * once, so that nothing this process starts later (activated services, a
 * forked child) believes the sockets are its own.
 */
export function takeHandoff(): Handoff | undefined {
  const raw = process.env[HANDOFF_ENV];
  const sweeper = process.env[SWEEPER_ENV];
  delete process.env[SWEEPER_ENV];
  if (raw === undefined) return undefined;
  delete process.env[HANDOFF_ENV];
  const [guid, ...lines] = raw.split('\n');
  if (!/^[0-9a-f]{32}$/.test(guid) || lines.length === 0) {
    throw new Error(`Malformed ${HANDOFF_ENV} from the launcher`);
  }
  const listeners = lines.map((line) => {
    const m = /^(\d+) (\S+)$/.exec(line);
    if (!m) throw new Error(`Malformed ${HANDOFF_ENV} from the launcher`);
    return { fd: Number(m[1]), address: m[2] };
  });
  const sweeperFd = sweeper !== undefined && /^\d+$/.test(sweeper) ? Number(sweeper) : undefined;
  return { guid, listeners, sweeperFd };
}

/**
 * The bus removes its socket files itself from now on (its signal handlers
 * are in place): the launcher's sweeper may go without removing them.
 */
export function dismissSweeper(handoff: Handoff): void {
  if (handoff.sweeperFd === undefined) return;
  try {
    writeSync(handoff.sweeperFd, 'k');
    closeSync(handoff.sweeperFd);
  } catch {
    // A sweeper that is gone removes nothing.
  }
  handoff.sweeperFd = undefined;
}
