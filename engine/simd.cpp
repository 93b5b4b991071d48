// engine/simd.cpp — run-time CPU feature detection (x86-64 only: AArch64 always has NEON) and the
// NSVQ_SIMD cap.
#include "engine/simd.h"
#include <cstdlib>
#include <cstring>

namespace nsvq {
int simd_env_cap() {
  static const int cap = [] {
    const char* v = getenv("NSVQ_SIMD");
    if (v && std::strcmp(v, "scalar") == 0) return 0;
    if (v && (std::strcmp(v, "avx2") == 0 || std::strcmp(v, "neon") == 0)) return 1;
    return 2;
  }();
  return cap;
}

bool cpu_has_avx512() {
#if NSVQ_X86
  static const bool ok = [] {
    if (getenv("NSVQ_NO_AVX512") || simd_env_cap() < 2) return false;  // tests of the other paths
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

bool cpu_has_avx2() {
#if NSVQ_X86
  static const bool ok = [] {
    if (simd_env_cap() < 1) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

const char* cpu_simd_level() {
  if (cpu_has_avx512()) return "avx512";
  if (cpu_has_avx2()) return "avx2";
  if (NSVQ_ARM64 && simd_env_cap() >= 1) return "neon";
  return "scalar";
}

const char* cpu_arch_name() { return NSVQ_X86 ? "x86-64" : NSVQ_ARM64 ? "aarch64" : "portable"; }
}  // namespace nsvq
