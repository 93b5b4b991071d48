// engine/backend.cpp — node execution through the op table, the CPU backend (aligned host memory,
// OpenMP thread count), backend lookup by name, and the CUDA stubs used when CUDA is not built.
#include "engine/backend.h"
#include <omp.h>
#include <cstdlib>
#include <cstring>

namespace nsvq {

void Backend::execute(Tensor* node, void* scratch, size_t scratch_bytes) {
  const OpDef& d = op_def(node->op);
  KernelFn k = d.kernel[kind()];
  if (!k) fail("%s: no kernel on backend %s for %s", op_name(node->op), name().c_str(), node->desc().c_str());
  ExecCtx ctx;
  ctx.nthreads = threads();
  ctx.scratch = scratch;
  ctx.scratch_bytes = scratch_bytes;
  ctx.backend_state = state();
  k(node, ctx);
}

static int g_cpu_threads = 0;

void cpu_set_threads(int n) {
  // default: OMP_NUM_THREADS when set, else every core
  g_cpu_threads = n > 0 ? n : (getenv("OMP_NUM_THREADS") ? omp_get_max_threads() : omp_get_num_procs());
  omp_set_num_threads(g_cpu_threads);
}

static thread_local int t_cpu_threads = 0;  // > 0 inside a CpuThreadsScope

int cpu_threads() {
  if (t_cpu_threads > 0) return t_cpu_threads;
  if (g_cpu_threads <= 0) cpu_set_threads(0);
  return g_cpu_threads;
}

CpuThreadsScope::CpuThreadsScope(int n) : prev_(t_cpu_threads), prev_omp_(omp_get_max_threads()) {
  t_cpu_threads = n > 0 ? n : omp_get_num_procs();
  omp_set_num_threads(t_cpu_threads);  // this thread's own setting (an OpenMP ICV per thread)
}

CpuThreadsScope::~CpuThreadsScope() {
  t_cpu_threads = prev_;
  omp_set_num_threads(prev_omp_);
}

namespace {
class CpuBackend : public Backend {
 public:
  BackendKind kind() const override { return BK_CPU; }
  std::string name() const override { return "cpu"; }
  size_t alignment() const override { return 64; }
  void* alloc(size_t bytes, const char* what) override {
    size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n ? n : 64);
    if (!p) fail("out of memory: cannot allocate %.1f MiB for %s on cpu", bytes / 1048576.0, what);
    return p;
  }
  void dealloc(void* p) override { std::free(p); }
  void copy_in(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_out(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_within(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void memset_zero(void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }
  void sync() override {}
  int threads() const override { return cpu_threads(); }
};

// Shapes without memory: tensors get a placeholder address that is never read or written (copies and
// fills do nothing, nothing executes). For building a model to learn its tensors' names and shapes.
class MetaBackend : public Backend {
 public:
  BackendKind kind() const override { return BK_CPU; }
  std::string name() const override { return "meta"; }
  size_t alignment() const override { return 64; }
  void* alloc(size_t, const char*) override { return &placeholder_; }
  void dealloc(void*) override {}
  void copy_in(void*, const void*, size_t) override {}
  void copy_out(void* dst, const void*, size_t bytes) override { std::memset(dst, 0, bytes); }
  void copy_within(void*, const void*, size_t) override {}
  void memset_zero(void*, size_t) override {}
  void sync() override {}

 private:
  alignas(64) char placeholder_[64] = {};
};
}  // namespace

Backend* backend_cpu() {
  static CpuBackend be;
  return &be;
}

Backend* backend_meta() {
  static MetaBackend be;
  return &be;
}

Backend* backend_by_name(const std::string& name) {
  if (name == "cpu") return backend_cpu();
  if (name == "cuda") return backend_cuda(0);
  if (name.rfind("cuda:", 0) == 0) {
    char* end = nullptr;
    long d = std::strtol(name.c_str() + 5, &end, 10);
    if (*end || d < 0) fail("unknown device '%s' (expected cpu, cuda or cuda:N)", name.c_str());
    return backend_cuda((int)d);
  }
  fail("unknown device '%s' (expected cpu, cuda or cuda:N)", name.c_str());
}

void Backend::set_precision(const std::string& p) {
  if (p == "fp32") return;
  if (p == "tf32" || p == "bf16")
    fail("--precision %s needs a CUDA device: %s computes in fp32", p.c_str(), name().c_str());
  fail("unknown precision '%s' (expected fp32 or tf32)", p.c_str());
}

Backend* backend_for(const std::string& device, const std::string& precision) {
  Backend* be = backend_by_name(device);
  be->set_precision(precision);
  return be;
}

#ifndef NSVQ_CUDA
bool cuda_compiled() { return false; }
int cuda_device_count() { return 0; }
std::vector<std::string> cuda_device_names() { return {}; }
std::string cuda_compiled_archs() { return ""; }
Backend* backend_cuda(int) { fail("this nsvq was built without CUDA (rebuild with nvcc available)"); }
#endif

}  // namespace nsvq
