// engine/simd.h — the target architecture (NSVQ_X86 / NSVQ_ARM64) and run-time CPU feature detection:
// the SIMD level the kernels dispatch to. The only place the library probes the CPU.
#pragma once

#if defined(__x86_64__)
#define NSVQ_X86 1
#else
#define NSVQ_X86 0
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define NSVQ_ARM64 1
#else
#define NSVQ_ARM64 0
#endif

namespace nsvq {
// The best level this CPU supports, capped by NSVQ_SIMD (below): "avx512", "avx2" or "scalar" on x86-64,
// "neon" or "scalar" on AArch64 (NEON is part of every ARMv8-A CPU), "scalar" elsewhere.
const char* cpu_simd_level();
// "x86-64", "aarch64" or "portable": the architecture the library was compiled for.
const char* cpu_arch_name();
// NSVQ_SIMD=avx2 | neon | scalar in the environment caps the level the run-time dispatchers (the SGEMM
// and the hand-written SIMD kernels) pick, so that one machine tests every path (the sanitizer step of
// CI runs the suite at each level); 2 = avx512 (or unset), 1 = avx2 / neon, 0 = scalar. An unknown
// value is ignored. NSVQ_NO_AVX512 (any value) acts as NSVQ_SIMD=avx2 on x86-64.
int simd_env_cap();
// The CPU has AVX-512 F/VL/BW/DQ and FMA and the cap allows it (always false off x86-64).
bool cpu_has_avx512();
// The CPU has AVX2 and FMA and the cap allows it (always false off x86-64).
bool cpu_has_avx2();
}  // namespace nsvq
