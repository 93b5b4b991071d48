// engine/simd.cpp — run-time CPU feature detection.
#include "engine/simd.h"

namespace nsvq {
const char* cpu_simd_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "scalar";
}
}  // namespace nsvq
