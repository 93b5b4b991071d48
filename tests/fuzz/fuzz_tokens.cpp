// tests/fuzz/fuzz_tokens.cpp — libFuzzer target: the token-file reader (train/tokens.h) on any bytes.
// Inputs whose checksums do not match stop early, so the target also recomputes the header's CRC when
// the first byte is odd: the fuzzer then reaches the size checks and the payload.
#include <zlib.h>
#include <cstdint>
#include <vector>
#include "engine/tensor.h"
#include "train/tokens.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  if (b.size() >= 56 && (b[0] & 1)) {
    b[0] = 'N';  // keep the magic
    uint32_t c = (uint32_t)crc32(0L, b.data(), 52);
    for (int k = 0; k < 4; k++) b[52 + k] = (uint8_t)(c >> (8 * k));
  }
  try {
    nsvq::TokenFile t = nsvq::tokens_parse(b, "fuzz");
    (void)t;
  } catch (const nsvq::Error&) {
  }
  return 0;
}
