/**
 * child_process, loaded on the first spawn: Node.js builds it on net, dgram
 * and the stream machinery, about 2 MB of an idle bus's memory, while most
 * buses spawn nothing after start (no activation, no handover, --nofork).
 */
import type * as ChildProcessModule from 'child_process';

let loaded: typeof ChildProcessModule | undefined;

export const spawn: typeof ChildProcessModule.spawn = ((...args: Parameters<typeof ChildProcessModule.spawn>) => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  loaded ??= require('child_process') as typeof ChildProcessModule;
  return loaded.spawn(...args);
}) as typeof ChildProcessModule.spawn;
