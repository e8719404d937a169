#pragma once
// Reads the header fields of a message the bus wrote itself (already valid),
// to point match views at the bytes that go out.
#include <cstddef>
#include <cstdint>

#include "message.h"

namespace wire {

// Fills the string fields, reply serial, unix fd count and body offset of
// `out` from `data`, which must hold a header produced by
// write_forward_header or Writer. No validation: the bytes are trusted.
void read_trusted_fields(const uint8_t* data, size_t len, Header& out);

}  // namespace wire
