#pragma once
// The compiled security policy as the control plane hands it over (see
// bridge/policy/native.ts for the shape), turned into the engine's form.
#include <napi.h>

#include <memory>

#include "engine/policy.h"

namespace bridge {

// Throws Napi::TypeError when the object does not have the expected shape.
std::shared_ptr<const kdbus::PolicyConfig> policy_from_js(const Napi::Value& v);

}  // namespace bridge
