// engine/simd.h — run-time CPU feature detection: the SIMD level kernels dispatch to.
#pragma once

namespace nsvq {
// "avx512", "avx2" or "scalar": the best level this CPU supports, capped by NSVQ_SIMD (below).
const char* cpu_simd_level();
// NSVQ_SIMD=avx2 | scalar in the environment caps the level the run-time dispatchers (the SGEMM and the
// hand-written AVX-512 kernels) pick, so that one machine tests every path (the sanitizer step of CI
// runs the suite at each level); 2 = avx512 (or unset), 1 = avx2, 0 = scalar. An unknown value is ignored.
int simd_env_cap();
}  // namespace nsvq
