/**
 * The bus configuration as read from busconfig XML, before any policy is
 * compiled: everything stays as the files said it, in the order they said it,
 * with the place it came from so later stages can report errors precisely.
 */

/** Where something was written: the file and the 1-based line. */
export interface SourceLocation {
  file: string;
  line: number;
}

/** An <allow> or <deny> element with every attribute as written, in order. */
export interface PolicyRule {
  kind: 'allow' | 'deny';
  /** Attribute name/value pairs in document order (e.g. send_destination, own, eavesdrop). */
  attributes: Array<[string, string]>;
  location: SourceLocation;
}

/** Which connections a <policy> block applies to (exactly one attribute in the file). */
export type PolicyScope =
  | { kind: 'default' }
  | { kind: 'mandatory' }
  | { kind: 'user'; user: string }
  | { kind: 'group'; group: string }
  | { kind: 'at_console'; atConsole: boolean };

export interface Policy {
  scope: PolicyScope;
  rules: PolicyRule[];
  location: SourceLocation;
}

/** <selinux><associate own="NAME" context="CONTEXT"/></selinux> */
export interface SelinuxAssociation {
  own: string;
  context: string;
  location: SourceLocation;
}

export type ApparmorMode = 'required' | 'enabled' | 'disabled';

/**
 * Every limit dbus-daemon 1.14 knows, by its configuration name, and the
 * per-user quotas of this bus (the *_per_user names dbus-daemon lacks).
 */
export type LimitName =
  | 'max_incoming_bytes'
  | 'max_incoming_unix_fds'
  | 'max_outgoing_bytes'
  | 'max_outgoing_unix_fds'
  | 'max_message_size'
  | 'max_message_unix_fds'
  | 'service_start_timeout'
  | 'auth_timeout'
  | 'pending_fd_timeout'
  | 'reply_timeout'
  | 'max_completed_connections'
  | 'max_incomplete_connections'
  | 'max_connections_per_user'
  | 'max_pending_service_starts'
  | 'max_names_per_connection'
  | 'max_match_rules_per_connection'
  | 'max_replies_per_connection'
  | 'max_containers'
  | 'max_containers_per_user'
  | 'max_container_metadata_bytes'
  | 'max_connections_per_container'
  | 'max_incoming_bytes_per_user'
  | 'max_incoming_unix_fds_per_user'
  | 'max_names_per_user'
  | 'max_match_rules_per_user'
  | 'max_replies_per_user';

export type Limits = Record<LimitName, number>;

export interface BusConfig {
  /** The file the configuration was loaded from (the top-level one). */
  file: string;
  /** <type>: "session", "system", or anything the file says. */
  type?: string;
  /** <listen> addresses in order, includes merged in place. */
  listen: string[];
  /** <auth> mechanisms in order; empty means all supported ones. */
  auth: string[];
  allowAnonymous: boolean;
  user?: string;
  fork: boolean;
  keepUmask: boolean;
  syslog: boolean;
  pidfile?: string;
  /** Activation directories, de-duplicated, first occurrence wins. */
  serviceDirs: string[];
  serviceHelper?: string;
  /** Directories named by <includedir> that existed (watched for reload). */
  includeDirs: string[];
  limits: Limits;
  /** <policy> blocks in document order, includes merged in place. */
  policies: Policy[];
  selinuxAssociations: SelinuxAssociation[];
  apparmorMode?: ApparmorMode;
}
