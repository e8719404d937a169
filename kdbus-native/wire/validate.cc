#include "validate.h"

#include <cstring>

#include "message.h"
#include "signature.h"

namespace wire::detail {

bool valid_utf8(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    // Most strings are ASCII: take eight bytes at a time while no byte has
    // its high bit set, rejecting any zero byte among them.
    while (n - i >= 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ULL) break;
      if ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) return false;
      i += 8;
    }
    if (i >= n) break;
    uint8_t c = p[i];
    if (c < 0x80) {
      if (c == 0) return false;
      ++i;
      continue;
    }
    // Lead bytes C0/C1 can only start overlong forms; F5 and up encode
    // beyond U+10FFFF.
    size_t extra;
    uint8_t lo = 0x80, hi = 0xBF;  // range of the first continuation byte
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (n - i <= extra) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k <= extra; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

namespace {

// Where a container left off, so the walk can come back to it without
// recursion: an array repeats its element type until its byte length is
// used up, a variant swaps in its own signature until that is exhausted.
struct Container {
  std::string_view sig;  // variant: the signature to return to
  size_t resume;         // variant: index to return to; array: element type start
  size_t elem_end;       // array: index past the element type
  size_t array_end;      // array: offset where the elements end
  size_t outer_limit;    // the read limit outside this container
  char kind;             // 'a' or 'v'
};

// Moves pos to the next multiple of `align` (a power of two), requiring the
// skipped bytes to be zero and to lie before `limit`.
inline const char* skip_padding(const uint8_t* msg, size_t& pos, size_t align, size_t limit) {
  size_t a = (pos + align - 1) & ~(align - 1);
  if (a > limit) return "not enough data for alignment";
  for (; pos < a; ++pos) {
    if (msg[pos] != 0) return "non-zero alignment padding";
  }
  return nullptr;
}

}  // namespace

const char* check_values(const ValueContext& ctx, std::string_view signature, size_t& pos_io, size_t end,
                         unsigned depth) {
  const uint8_t* msg = ctx.msg;
  const bool be = ctx.big_endian;
  Container frames[kMaxValueDepth];
  size_t top = 0;
  std::string_view sig = signature;
  size_t i = 0;
  size_t pos = pos_io;
  size_t limit = end;
  const char* err;

  for (;;) {
    if (top > 0) {
      Container& f = frames[top - 1];
      if (f.kind == 'a' && i == f.elem_end) {
        if (pos < f.array_end) {
          i = f.resume;  // next element
          continue;
        }
        limit = f.outer_limit;  // pos == array_end: reads never pass limit
        --top;
        --depth;
        continue;
      }
      if (f.kind == 'v' && i == sig.size()) {
        sig = f.sig;
        i = f.resume;
        --top;
        --depth;
        continue;
      }
    } else if (i == sig.size()) {
      break;
    }

    const char c = sig[i++];
    switch (c) {
      case 'y':
        if (pos >= limit) return "not enough data";
        ++pos;
        break;

      case 'b': case 'n': case 'q': case 'i': case 'u': case 'h': case 'x': case 't': case 'd': {
        const size_t size = sig::fixed_size(c);
        if ((err = skip_padding(msg, pos, size, limit))) return err;
        if (size > limit - pos) return "not enough data";
        if (c == 'b' && load_u32(msg + pos, be) > 1) return "boolean is not 0 or 1";
        pos += size;
        break;
      }

      case 's': case 'o': {
        if ((err = skip_padding(msg, pos, 4, limit))) return err;
        if (4 > limit - pos) return "not enough data";
        const uint32_t n = load_u32(msg + pos, be);
        pos += 4;
        if (n >= limit - pos) return "string length out of bounds";  // n bytes plus NUL
        if (msg[pos + n] != 0) return "string not NUL-terminated";
        if (c == 's') {
          if (!valid_utf8(msg + pos, n)) return "string is not valid UTF-8 or contains NUL";
        } else if (!valid_object_path(std::string_view(reinterpret_cast<const char*>(msg + pos), n))) {
          return "invalid object path";
        }
        pos += size_t{n} + 1;
        break;
      }

      case 'g': {
        if (pos >= limit) return "not enough data";
        const size_t n = msg[pos++];
        if (n >= limit - pos) return "signature length out of bounds";
        if (msg[pos + n] != 0) return "signature not NUL-terminated";
        if (!valid_signature(std::string_view(reinterpret_cast<const char*>(msg + pos), n))) {
          return "invalid signature value";
        }
        pos += n + 1;
        break;
      }

      case 'a': {
        if ((err = skip_padding(msg, pos, 4, limit))) return err;
        if (4 > limit - pos) return "not enough data";
        const uint32_t n = load_u32(msg + pos, be);
        pos += 4;
        const size_t elem_begin = i;
        const size_t elem_end = sig::complete_type_end(sig, i);
        const char ec = sig[elem_begin];
        // The padding up to the first element is there even when the array
        // is empty, and is not part of the array length.
        if ((err = skip_padding(msg, pos, sig::alignment(ec), limit))) return err;
        if (n > kMaxArraySize) return "array longer than 64 MiB";
        if (n > limit - pos) return "array length out of bounds";
        if (n == 0) {
          i = elem_end;
          break;
        }
        if (const size_t fs = sig::fixed_size(ec)) {
          if (n % fs != 0) return "array length not a multiple of its element size";
          if (ec == 'b') {
            for (size_t p = pos; p < pos + n; p += 4) {
              if (load_u32(msg + p, be) > 1) return "boolean is not 0 or 1";
            }
          }
          pos += n;
          i = elem_end;
          break;
        }
        if (depth + 1 > kMaxValueDepth) return "values nested too deeply";
        frames[top++] = Container{sig, elem_begin, elem_end, pos + n, limit, 'a'};
        limit = pos + n;
        ++depth;
        break;
      }

      case '(': case '{':
        if ((err = skip_padding(msg, pos, 8, limit))) return err;
        if (depth + 1 > kMaxValueDepth) return "values nested too deeply";
        ++depth;
        break;

      case ')': case '}':
        --depth;
        break;

      case 'v': {
        if (pos >= limit) return "not enough data";
        const size_t n = msg[pos++];
        if (n >= limit - pos) return "variant signature length out of bounds";
        if (msg[pos + n] != 0) return "variant signature not NUL-terminated";
        const std::string_view vsig(reinterpret_cast<const char*>(msg + pos), n);
        if (!sig::is_single_complete_type(vsig)) return "variant signature is not one complete type";
        pos += n + 1;
        if ((err = skip_padding(msg, pos, sig::alignment(vsig[0]), limit))) return err;
        if (depth + 1 > kMaxValueDepth) return "values nested too deeply";
        frames[top++] = Container{sig, i, 0, 0, limit, 'v'};
        sig = vsig;
        i = 0;
        ++depth;
        break;
      }

      default:
        return "invalid type code in signature";
    }
  }
  pos_io = pos;
  return nullptr;
}

}  // namespace wire::detail
