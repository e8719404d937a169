#pragma once
// Credentials of a connection, captured from the kernel when it connects
// (kdbus attaches the same at HELLO), so peers need not trust each other.
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "../util/fd.h"

namespace kdbus {

struct Metadata {
  bool has_creds = false;  // SO_PEERCRED
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  bool has_groups = false;  // SO_PEERGROUPS: all groups, sorted, deduplicated, primary gid included
  std::vector<gid_t> groups;
  bool has_seclabel = false;  // SO_PEERSEC, without trailing NUL
  std::string seclabel;
  std::shared_ptr<util::UniqueFd> pidfd;  // SO_PEERPIDFD where the kernel has it; null otherwise
  // The start of the process's command line as logs show it (kdbus's
  // KDBUS_ITEM_CMDLINE), taken at HELLO: what the process does with its
  // argv later does not change it.
  std::string command;
};

// What /proc says of a process, for the org.kdbusbridge.Bus1 metadata
// (kdbus's PIDS, PID_COMM, EXE, CMDLINE and CGROUP items). Empty strings and
// ppid 0 where unreadable.
struct ProcessFacts {
  pid_t ppid = 0;
  std::string comm;     // /proc/PID/comm without the newline
  std::string exe;      // the target of /proc/PID/exe
  std::string cmdline;  // /proc/PID/cmdline as it is: arguments each ended by NUL
  std::string cgroup;   // the unified hierarchy's path ("0::" line), else the first line
};
ProcessFacts capture_process_facts(pid_t pid);

// Reads what the kernel knows about the peer of a connected AF_UNIX socket.
// Fields the kernel cannot supply are left absent. The pidfd is not taken
// here: the socket keeps the process that connected it, so capture_pidfd
// gives the same answer for as long as the socket is open, when asked.
Metadata capture_peer_metadata(int socket_fd);

// The first bytes of /proc/PID/cmdline as dbus-daemon logs them: the NULs
// between arguments become spaces, the one that ends the last argument is
// dropped, and what is not printable ASCII becomes '?'. Empty if unreadable.
std::string capture_command(pid_t pid);

// SO_PEERPIDFD where the kernel has it; null otherwise.
std::shared_ptr<util::UniqueFd> capture_pidfd(int socket_fd);

}  // namespace kdbus
