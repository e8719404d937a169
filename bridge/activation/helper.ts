/**
 * dbus-daemon's setuid launch helper (<servicehelper>, Debian's
 * dbus-daemon-launch-helper): the bus runs `HELPER SERVICE-NAME`, the helper
 * finds the service file itself, checks it, switches to its User= and execs
 * it. Its exit status says what went wrong, with the codes of dbus's
 * activation-exit-codes.h; dbus-daemon reports each as below.
 */
import type { ActivationError } from './manager';

const ERR = 'org.freedesktop.DBus.Error.';

const HELPER_FAILURES: Record<number, ActivationError> = {
  2: { name: `${ERR}NoMemory`, message: 'Launcher could not run (out of memory)' },
  3: { name: `${ERR}Spawn.ConfigInvalid`, message: 'Invalid configuration (missing or empty <user>?)' },
  4: { name: `${ERR}Spawn.FailedToSetup`, message: 'Failed to setup environment correctly' },
  5: { name: `${ERR}Spawn.ServiceNotValid`, message: 'Bus name is not valid or missing' },
  6: { name: `${ERR}Spawn.ServiceNotFound`, message: 'Bus name not found in system service directory' },
  7: { name: `${ERR}Spawn.PermissionsInvalid`, message: 'The permission of the setuid helper is not correct' },
  // dbus-daemon reports a bad service file under PermissionsInvalid too.
  8: { name: `${ERR}Spawn.PermissionsInvalid`, message: 'The service file is incorrect or does not have all required attributes' },
  9: { name: `${ERR}Spawn.ExecFailed`, message: 'Cannot launch daemon, file not found or permissions invalid' },
  10: { name: `${ERR}InvalidArgs`, message: 'Invalid arguments to command line' },
  11: { name: `${ERR}Spawn.ChildSignaled`, message: 'Launched child was signaled, it probably crashed' },
};

/** What a caller is told when the helper exits with `status` (not 0). */
export function helperExitError(status: number): ActivationError {
  return (
    HELPER_FAILURES[status] ?? { name: `${ERR}Spawn.ChildExited`, message: `Launch helper exited with unknown return code ${status}` }
  );
}

/** A service the helper cannot start: its file names no User=. */
export const NO_USER_ERROR: ActivationError = {
  name: `${ERR}Spawn.FileInvalid`,
  message: 'Cannot do system-bus activation with no user\n',
};

/**
 * Without a helper, a bus that is not root cannot become another user: the
 * service is refused with the helper's error for that case rather than run
 * as the bus's own user.
 */
export const CANNOT_SWITCH_USER_ERROR: ActivationError = HELPER_FAILURES[4];
