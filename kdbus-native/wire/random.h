#pragma once
// Random bytes and their hex form: GUIDs, socket names, SASL challenges, keys.
#include <cstddef>
#include <string>
#include <string_view>

namespace wire {

// Fills buf from the kernel's random source; false if it is unavailable.
bool random_bytes(void* buf, size_t len);

std::string hex_encode(std::string_view bytes);

}  // namespace wire
