// tests/cuda_emu/emu_glue.cpp — glue of the emulated build (tests/cuda_emu/emu_check.sh): registers
// the CUDA kernels of families that ops_init() may not call yet, prints launch statistics at exit,
// and supplies weak stand-ins for CUDA hooks that are declared but not written yet.
#include <cstddef>
#include <cstdio>
#include "tests/cuda_emu/cuda_emu.h"

namespace nsvq {
struct Tensor;
void register_norm_cuda();
void register_attention_cuda();
__attribute__((weak)) void register_vq_cuda() {}
namespace vq_detail {
__attribute__((weak)) size_t cuda_scratch(const Tensor*) { return 0; }
}  // namespace vq_detail
}  // namespace nsvq

// op_register merges, so registering a family twice (here and in ops_init) is harmless
static int emu_registered = (nsvq::register_norm_cuda(), nsvq::register_attention_cuda(), 0);

struct EmuStats {
  ~EmuStats() {
    fprintf(stderr, "cuda-emu: %ld kernel launches, %ld blocks, %ld cuBLAS GEMMs\n", emu::launches, emu::blocks_run,
            emu_gemms);
  }
} emu_stats_printer;
