// tools/cmd_info.cpp — `nsvq info`: version, build type, SIMD level in use, threads, CUDA devices
// and compiled CUDA architectures.
#include <cstdio>
#include "engine/backend.h"
#include "engine/dist.h"
#include "engine/cpu/gemm.h"
#include "engine/simd.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace nsvq {

int cmd_info(int argc, char** argv, int first) {
  Args a("info", "Prints version, build, SIMD level, threads and CUDA devices.",
         {{"threads", "t", "0", "CPU threads (0: all cores)"}, {"model", "m", "", "a checkpoint: print its config, parameter counts, step, stage and stored metrics"}}, argc, argv, first);
  if (!a.str("model").empty()) return info_checkpoint(a.str("model"));
  cpu_set_threads((int)a.i64("threads"));
  printf("nsvq %s\n", NSVQ_VERSION);
  printf("build: %s%s\n", NSVQ_BUILD_TYPE,
#ifdef __OPTIMIZE__
         ""
#else
         " (unoptimised)"
#endif
  );
  printf("simd: %s (gemm kernel: %s)\ncpu: %s %s\n", cpu_simd_level(), gemm_simd_level(), cpu_arch_name(), cpu_simd_level());
  printf("threads: %d\n", cpu_threads());
  printf("distributed: %s\n", dist_build_info().c_str());
  if (!cuda_compiled()) {
    printf("cuda: not built\n");
    return 0;
  }
  printf("cuda architectures: %s\n", cuda_compiled_archs().c_str());
  std::vector<std::string> devs = cuda_device_names();
  if (devs.empty()) printf("cuda devices: no CUDA device\n");
  for (size_t i = 0; i < devs.size(); i++) printf("cuda device %zu: %s\n", i, devs[i].c_str());
  return 0;
}

}  // namespace nsvq
