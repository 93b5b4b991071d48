// engine/simd.h — run-time CPU feature detection: the SIMD level kernels dispatch to.
#pragma once

namespace nsvq {
// "avx512", "avx2" or "scalar": the best level this CPU supports (what target_clones kernels pick).
const char* cpu_simd_level();
}  // namespace nsvq
