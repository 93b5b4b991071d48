// engine/backend.h — the small backend interface: memory, copies, synchronisation and execution
// of one node through the op table. CPU is always present; CUDA when built with NSVQ_CUDA and a
// device is found.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "engine/op_table.h"

namespace nsvq {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendKind kind() const = 0;
  virtual std::string name() const = 0;  // "cpu", "cuda:0 (NVIDIA H100 ...)"
  // Allocates `bytes` of backend memory aligned to alignment(); throws Error naming `what` when
  // memory runs out.
  virtual void* alloc(size_t bytes, const char* what) = 0;
  virtual void dealloc(void* p) = 0;
  virtual size_t alignment() const = 0;
  virtual void copy_in(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_out(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy_within(void* dst, const void* src, size_t bytes) = 0;
  virtual void memset_zero(void* dst, size_t bytes) = 0;
  virtual void sync() = 0;
  virtual int threads() const { return 1; }
  virtual void* state() { return nullptr; }  // goes into ExecCtx::backend_state

  // Launch recording (CUDA graphs): capture() records the kernel launches record() makes, without
  // running them, and returns an executable to replay(); nullptr when the backend cannot (then
  // nothing ran and the caller launches normally). replay() only enqueues: sync() waits for it.
  virtual void* capture(const std::function<void()>& record) { return nullptr; }
  virtual void replay(void* exec) {}
  virtual void release(void* exec) {}

  // Matrix-multiply precision: "fp32" (default, everywhere) or "tf32" (CUDA: cuBLAS may use TF32
  // tensor cores; weights, statistics, softmax and losses stay f32). Throws Error for anything else.
  virtual void set_precision(const std::string& p);
  const std::string& precision() const { return precision_; }

  bool supports(int op) const { return op_def(op).kernel[kind()] != nullptr; }
  void execute(Tensor* node, void* scratch, size_t scratch_bytes);

 protected:
  std::string precision_ = "fp32";
};

// The CPU backend (singleton). threads <= 0: all cores.
Backend* backend_cpu();
// Tensors with shapes and no memory (a Store on it learns a model's names and shapes for free);
// graphs cannot run on it.
Backend* backend_meta();
void cpu_set_threads(int n);
int cpu_threads();  // the calling thread's CpuThreadsScope if one is open, else the process-wide count
// For its lifetime, the calling thread plans (kernel scratch) and runs CPU graphs with n threads
// (n <= 0: all cores), whatever other threads use: what lets the C API's models, each used by one
// thread, run side by side with their own thread counts. Scopes nest.
class CpuThreadsScope {
 public:
  explicit CpuThreadsScope(int n);
  ~CpuThreadsScope();
  CpuThreadsScope(const CpuThreadsScope&) = delete;
  CpuThreadsScope& operator=(const CpuThreadsScope&) = delete;

 private:
  int prev_, prev_omp_;
};

// CUDA: compiled in? number of devices (0 when the driver or a device is missing).
bool cuda_compiled();
int cuda_device_count();
std::vector<std::string> cuda_device_names();
std::string cuda_compiled_archs();  // "80;86;89;90" or ""
// The CUDA backend for `device`; throws Error with a clear message when none is available.
Backend* backend_cuda(int device = 0);

// "cpu" | "cuda" | "cuda:N"
Backend* backend_by_name(const std::string& name);
// backend_by_name(device) with set_precision(precision): the --device / --precision options
Backend* backend_for(const std::string& device, const std::string& precision);
// the --precision option's entry for a command's option list
#define NSVQ_PRECISION_OPTION                                                                            \
  {"precision", "", "fp32",                                                                             \
   "fp32 | tf32 (CUDA: TF32 tensor cores in cuBLAS matrix products; f32 weights, statistics and losses)"}

}  // namespace nsvq
