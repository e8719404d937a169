#pragma once
#include <string>

#include "../../kdbus-native/engine/message.h"

namespace enginetest {

// One delivery as text: what it is, from whom, its cookies, and the roles it
// has for the receiver ([A]ddressed, [M]atched, [E]avesdropped, [O]ld owner,
// [N]ew owner).
std::string describe(const kdbus::Delivery& d);

}  // namespace enginetest
