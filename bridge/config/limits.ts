import type { LimitName, Limits } from './types';

const ONE_MEGABYTE = 1024 * 1024;
/** dbus's DBUS_DEFAULT_MESSAGE_UNIX_FDS on Linux. */
const DEFAULT_MESSAGE_UNIX_FDS = 16;
const INT_MIN = -2147483648;
const INT_MAX = 2147483647;

/** What a bus uses when no <limit> says otherwise (dbus-daemon's built-in numbers). */
export function defaultLimits(): Limits {
  return {
    max_incoming_bytes: ONE_MEGABYTE * 127,
    max_incoming_unix_fds: DEFAULT_MESSAGE_UNIX_FDS * 4,
    max_outgoing_bytes: ONE_MEGABYTE * 127,
    max_outgoing_unix_fds: DEFAULT_MESSAGE_UNIX_FDS * 4,
    max_message_size: ONE_MEGABYTE * 32,
    max_message_unix_fds: DEFAULT_MESSAGE_UNIX_FDS,
    service_start_timeout: 25000,
    auth_timeout: 30000,
    pending_fd_timeout: 150000,
    // dbus-daemon's "never": -1 means replies may take as long as they like.
    reply_timeout: -1,
    max_completed_connections: 2048,
    max_incomplete_connections: 64,
    max_connections_per_user: 256,
    max_pending_service_starts: 512,
    max_names_per_connection: 512,
    max_match_rules_per_connection: 512,
    max_replies_per_connection: 128,
    max_containers: 512,
    max_containers_per_user: 16,
    max_container_metadata_bytes: 4096,
    max_connections_per_container: 8,
    // Quotas of one uid over all its connections (root is exempt): a few
    // connections' worth of the per-connection limits above, far beyond
    // what a desktop session holds, so that only a user hoarding the bus
    // meets them while other users keep being served.
    max_incoming_bytes_per_user: ONE_MEGABYTE * 127 * 4,
    max_incoming_unix_fds_per_user: DEFAULT_MESSAGE_UNIX_FDS * 4 * 4,
    max_names_per_user: 50000,
    max_match_rules_per_user: 50000,
    max_replies_per_user: 50000,
  };
}

/**
 * Limits whose value must also fit a C int (they count things or are
 * milliseconds); the byte and fd limits only need to fit a long.
 */
const INT_LIMITS: ReadonlySet<LimitName> = new Set<LimitName>([
  'service_start_timeout',
  'auth_timeout',
  'pending_fd_timeout',
  'reply_timeout',
  'max_completed_connections',
  'max_incomplete_connections',
  'max_connections_per_user',
  'max_pending_service_starts',
  'max_names_per_connection',
  'max_match_rules_per_connection',
  'max_replies_per_connection',
  'max_containers',
  'max_containers_per_user',
  'max_container_metadata_bytes',
  'max_connections_per_container',
  'max_names_per_user',
  'max_match_rules_per_user',
  'max_replies_per_user',
]);

export function isLimitName(name: string): name is LimitName {
  return Object.prototype.hasOwnProperty.call(defaultLimits(), name);
}

/**
 * Validates a limit as dbus-daemon does and returns an error message, or
 * undefined when the value is acceptable.
 */
export function checkLimit(name: string, value: number): string | undefined {
  if (!isLimitName(name)) return `There is no limit called "${name}"`;
  if (value < 0) return `<limit name="${name}"> must be a positive number`;
  if (INT_LIMITS.has(name) && (value < INT_MIN || value > INT_MAX)) {
    return `<limit name="${name}"> value is too large`;
  }
  return undefined;
}
