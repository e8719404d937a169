#pragma once
// A start plan: what the Node.js side learnt from a configuration the last
// time it started the bus with it, and the stamps of every file and
// directory that reading depended on. The launcher trusts it only while all
// stamps still match; the format is written by bridge/start-plan.ts.
#include <optional>
#include <string>
#include <vector>

namespace launcher {

struct Plan {
  bool fork = false;      // <fork/>
  bool user = false;      // <user> present
  bool pidfile = false;   // <pidfile> present
  std::vector<std::string> listen;  // <listen> elements, in order, as written
};

// Where plans live: $KDBUS_BRIDGE_CACHE_DIR (empty = no plans), else
// /var/cache/kdbus-bridge for root, else $XDG_CACHE_HOME/kdbus-bridge or
// ~/.cache/kdbus-bridge. Empty when there is none.
std::string cache_dir();

// The plan's file for a configuration file (an absolute, normalised path).
std::string plan_file(const std::string& dir, const std::string& config_file);

// The plan for config_file if it is ours to trust (owned by the effective
// user, writable by nobody else, in a directory likewise) and every stamp
// in it matches the file system now; nullopt otherwise.
std::optional<Plan> load_plan(const std::string& config_file);

}  // namespace launcher
