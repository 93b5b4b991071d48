// engine/simd.cpp — run-time CPU feature detection and the NSVQ_SIMD cap.
#include "engine/simd.h"
#include <cstdlib>
#include <cstring>

namespace nsvq {
int simd_env_cap() {
  static const int cap = [] {
    const char* v = getenv("NSVQ_SIMD");
    if (v && std::strcmp(v, "scalar") == 0) return 0;
    if (v && std::strcmp(v, "avx2") == 0) return 1;
    return 2;
  }();
  return cap;
}

const char* cpu_simd_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && simd_env_cap() >= 2) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && simd_env_cap() >= 1) return "avx2";
  return "scalar";
}
}  // namespace nsvq
