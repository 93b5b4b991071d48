// engine/cuda/backend_cuda.cu — the CUDA backend: one stream and one cuBLAS handle per device,
// cudaMalloc memory, stream-ordered copies, the index-error slots checked at sync, device discovery
// (never throws or prints when there is no driver or device) and the check that this build's CUDA
// architectures (NSVQ_CUDA_ARCHS) can run on the device.
//
// Architecture rule (entries as in CMAKE_CUDA_ARCHITECTURES: "86" = SASS sm_86 + PTX compute_86,
// "86-real" = SASS only, "86-virtual" = PTX only; "90a" arch-specific, "100f" family-specific):
//   a device of compute capability X.Y can run this build when some entry gives
//   - SASS sm_XZ of the same major X with Z <= Y (cubins run on later minors of one major), or
//   - PTX compute_VW with VW <= XY (the driver JIT-compiles it for the newer device),
//   where "a" entries match only exactly X.Y and "f" entries only the same major with Z <= Y.
// So sm_75 is refused by 80;86;89;90, an sm_120 device runs 80;86;89;90 through compute_90 PTX but
// not 80-real;90-real. The rule's verdict is then confirmed by asking the runtime for a kernel's
// attributes on the device (which fails with "no kernel image" exactly when nothing fits).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include "engine/backend.h"
#include "engine/cuda/cuda_common.cuh"

#ifndef NSVQ_CUDA_ARCHS
#define NSVQ_CUDA_ARCHS ""
#endif

namespace nsvq {

// ------------------------------------------------------------------------------------ errors

void cuda_fail(const char* file, int line, const char* expr, cudaError_t e) {
  cudaGetLastError();  // clear a non-sticky error so that later calls start clean
  const char* base = std::strrchr(file, '/');
  fail("CUDA error at %s:%d: %s (%s) in %s", base ? base + 1 : file, line, cudaGetErrorString(e),
       cudaGetErrorName(e), expr);
}

static const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

void cublas_fail(const char* file, int line, const char* expr, cublasStatus_t s) {
  const char* base = std::strrchr(file, '/');
  fail("cuBLAS error at %s:%d: %s (%d) in %s", base ? base + 1 : file, line, cublas_status_name(s), (int)s, expr);
}

void cuda_use_device(int device) {
  static thread_local int current = -1;
  if (current == device) return;
  CUDA_CHECK(cudaSetDevice(device));
  current = device;
}

// ------------------------------------------------------------------------------------ index-error slots

unsigned long long* cuda_err_slot(CudaState* st, const char* op, const char* value, const char* where, long long limit) {
  if ((int)st->pending.size() >= CUDA_ERR_SLOTS) {
    if (st->capturing) throw CudaCaptureOverflow();  // cannot synchronise inside a recording
    cuda_check_errors(st);
  }
  st->pending.push_back({op, value, where, limit});
  return st->err_dev + (st->pending.size() - 1);
}

void cuda_check_errors(CudaState* st) {
  if (st->pending.empty()) return;
  size_t n = st->pending.size();
  cuda_use_device(st->device);
  CUDA_CHECK(cudaMemcpyAsync(st->err_host, st->err_dev, n * sizeof(unsigned long long), cudaMemcpyDeviceToHost, st->stream));
  CUDA_CHECK(cudaMemsetAsync(st->err_dev, 0xff, n * sizeof(unsigned long long), st->stream));
  CUDA_CHECK(cudaStreamSynchronize(st->stream));
  std::vector<CudaErrCheck> checks;
  checks.swap(st->pending);
  for (size_t i = 0; i < n; i++) {
    unsigned long long key = st->err_host[i];
    if (key == CUDA_NO_ERROR) continue;
    const CudaErrCheck& c = checks[i];
    fail("%s: %s %d at %s %lld out of range [0, %lld)", c.op, c.value, (int32_t)(uint32_t)(key & 0xffffffffull), c.where,
         (long long)(key >> 32), c.limit);
  }
}

// ------------------------------------------------------------------------------------ architectures

namespace {

// One CMAKE_CUDA_ARCHITECTURES entry.
struct ArchEntry {
  int cc = 0;          // 86 for "86"
  bool sass = true;    // real
  bool ptx = true;     // virtual
  char variant = 0;    // 'a' (arch-specific), 'f' (family-specific) or 0
};

// Parses NSVQ_CUDA_ARCHS (separators ';', ',' or blanks). `known` is false when an entry cannot be
// interpreted ("all", "all-major", "native"): then only the runtime probe decides.
std::vector<ArchEntry> parse_archs(const std::string& s, bool& known) {
  std::vector<ArchEntry> out;
  known = true;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && s[j] != ';' && s[j] != ',' && s[j] != ' ' && s[j] != '\t') j++;
    std::string tok = s.substr(i, j - i);
    i = j + 1;
    if (tok.empty()) continue;
    ArchEntry e;
    size_t k = 0;
    while (k < tok.size() && tok[k] >= '0' && tok[k] <= '9') e.cc = e.cc * 10 + (tok[k++] - '0');
    if (k == 0) {
      known = false;
      continue;
    }
    if (k < tok.size() && (tok[k] == 'a' || tok[k] == 'f')) e.variant = tok[k++];
    std::string rest = tok.substr(k);
    if (rest == "-real") e.ptx = false;
    else if (rest == "-virtual") e.sass = false;
    else if (!rest.empty()) {
      known = false;
      continue;
    }
    out.push_back(e);
  }
  return out;
}

bool entry_runs_on(const ArchEntry& e, int dev_cc) {
  int emaj = e.cc / 10, emin = e.cc % 10, dmaj = dev_cc / 10, dmin = dev_cc % 10;
  if (e.variant == 'a') return e.cc == dev_cc;
  if (e.variant == 'f') return emaj == dmaj && emin <= dmin;
  if (e.sass && emaj == dmaj && emin <= dmin) return true;
  if (e.ptx && e.cc <= dev_cc) return true;
  return false;
}

std::string normalized_archs() {
  std::string s = NSVQ_CUDA_ARCHS, r;
  for (char ch : s) r += (ch == ',' || ch == ' ') ? ';' : ch;
  return r;
}

// A trivial kernel whose attributes tell whether this binary has an image the device can load.
__global__ void arch_probe_kernel(int* p) {
  if (p) *p = 0;
}

// Device count and, when it is 0, why (for backend_cuda's message). Queried once; never throws.
struct Discovery {
  int count = 0;
  std::string why;
};

const Discovery& discover() {
  static Discovery d = [] {
    Discovery r;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      cudaGetLastError();
      r.count = 0;
      if (e == cudaErrorInsufficientDriver) {
        int rt = 0;
        cudaRuntimeGetVersion(&rt);
        char buf[256];
        snprintf(buf, sizeof buf, "the NVIDIA driver is missing or older than CUDA runtime %d.%d (%s)", rt / 1000,
                 (rt % 1000) / 10, cudaGetErrorName(e));
        r.why = buf;
      } else {
        r.why = std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")";
      }
    } else {
      r.count = n;
      if (n == 0) r.why = "no CUDA device found";
    }
    return r;
  }();
  return d;
}

std::string device_label(int d) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, d) != cudaSuccess) {
    cudaGetLastError();
    return "unknown device";
  }
  char buf[384];
  snprintf(buf, sizeof buf, "%s, sm_%d%d, %.1f GiB, %d SMs", p.name, p.major, p.minor, p.totalGlobalMem / 1073741824.0,
           p.multiProcessorCount);
  return buf;
}

// Fails with a clear message when this build cannot run on device d.
void check_arch(int d, const cudaDeviceProp& p) {
  int cc = p.major * 10 + p.minor;
  std::string archs = normalized_archs();
  bool known = true;
  std::vector<ArchEntry> es = parse_archs(archs, known);
  // no interpretable entries, or some ("native", "all") we cannot judge: the probe decides
  bool ok = es.empty() || !known;
  for (const ArchEntry& e : es)
    if (entry_runs_on(e, cc)) ok = true;
  char hint[160];
  snprintf(hint, sizeof hint, "rebuild with -DCMAKE_CUDA_ARCHITECTURES=%d%d (or add it to the list)", p.major, p.minor);
  if (!ok)
    fail("cuda:%d (%s) has compute capability %d.%d, but this nsvq was built for CUDA architectures '%s', none of "
         "which can run on it (SASS runs on the same major version with an equal or higher minor, PTX on any newer "
         "device); %s",
         d, p.name, p.major, p.minor, archs.c_str(), hint);
  cudaFuncAttributes fa;
  cudaError_t e = cudaFuncGetAttributes(&fa, arch_probe_kernel);
  if (e != cudaSuccess) {
    cudaGetLastError();
    fail("cuda:%d (%s, compute capability %d.%d) cannot load this build's kernels (architectures '%s'): %s (%s); %s", d,
         p.name, p.major, p.minor, archs.c_str(), cudaGetErrorString(e), cudaGetErrorName(e),
         e == cudaErrorUnsupportedPtxVersion ? "the NVIDIA driver is older than the CUDA toolkit that built nsvq" : hint);
  }
}

// ------------------------------------------------------------------------------------ the backend

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int device) {
    cuda_use_device(device);
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    check_arch(device, p);
    st_.device = device;
    st_.sm_count = p.multiProcessorCount > 0 ? p.multiProcessorCount : 1;
    name_ = "cuda:" + std::to_string(device) + " (" + p.name + ")";
    CUDA_CHECK(cudaStreamCreateWithFlags(&st_.stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&st_.cublas));
    CUBLAS_CHECK(cublasSetStream(st_.cublas, st_.stream));
    // plain FP32 (no TF32 tensor-core rounding) so results stay close to the CPU's SGEMM
    CUBLAS_CHECK(cublasSetMathMode(st_.cublas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetPointerMode(st_.cublas, CUBLAS_POINTER_MODE_HOST));
    CUDA_CHECK(cudaMalloc(&st_.err_dev, CUDA_ERR_SLOTS * sizeof(unsigned long long)));
    // on our stream (a non-blocking stream does not wait for the legacy default stream)
    CUDA_CHECK(cudaMemsetAsync(st_.err_dev, 0xff, CUDA_ERR_SLOTS * sizeof(unsigned long long), st_.stream));
    CUDA_CHECK(cudaStreamSynchronize(st_.stream));
    CUDA_CHECK(cudaMallocHost(&st_.err_host, CUDA_ERR_SLOTS * sizeof(unsigned long long)));
    st_.pending.reserve(CUDA_ERR_SLOTS);
  }
  // Backends live until the process ends (never destroyed: the CUDA runtime may already be torn
  // down when static destructors run).

  void set_precision(const std::string& p) override {
    if (p == "bf16") fail("--precision bf16 is not implemented yet (fp32 or tf32)");
    if (p != "fp32" && p != "tf32") fail("unknown precision '%s' (expected fp32 or tf32)", p.c_str());
    CUBLAS_CHECK(cublasSetMathMode(st_.cublas, p == "tf32" ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    precision_ = p;
  }

  BackendKind kind() const override { return BK_CUDA; }
  std::string name() const override { return name_; }
  size_t alignment() const override { return 256; }

  void* alloc(size_t bytes, const char* what) override {
    cuda_use_device(st_.device);
    size_t n = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, n);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
      fail("out of memory: cannot allocate %.1f MiB (%zu bytes) for %s on %s (%.1f MiB free of %.1f MiB)",
           bytes / 1048576.0, bytes, what ? what : "?", name_.c_str(), free_b / 1048576.0, total_b / 1048576.0);
    }
    if (e != cudaSuccess) cuda_fail(__FILE__, __LINE__, "cudaMalloc", e);
    return p;
  }
  // Never throws (called from destructors).
  void dealloc(void* p) override {
    if (!p) return;
    try {
      cuda_use_device(st_.device);
    } catch (const Error&) {
      return;
    }
    if (cudaFree(p) != cudaSuccess) cudaGetLastError();
  }

  void copy_in(void* dst, const void* host_src, size_t bytes) override {
    if (!bytes) return;
    cuda_use_device(st_.device);
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, st_.stream));
    CUDA_CHECK(cudaStreamSynchronize(st_.stream));  // the host buffer may be reused right after
  }
  void copy_out(void* host_dst, const void* src, size_t bytes) override {
    cuda_use_device(st_.device);
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, st_.stream));
    CUDA_CHECK(cudaStreamSynchronize(st_.stream));
    cuda_check_errors(&st_);
  }
  void copy_within(void* dst, const void* src, size_t bytes) override {
    if (!bytes || dst == src) return;
    cuda_use_device(st_.device);
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st_.stream));
  }
  void memset_zero(void* dst, size_t bytes) override {
    if (!bytes) return;
    cuda_use_device(st_.device);
    CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, st_.stream));
  }
  void sync() override {
    cuda_use_device(st_.device);
    CUDA_CHECK(cudaStreamSynchronize(st_.stream));
    cuda_check_errors(&st_);
  }
  int threads() const override { return 1; }
  void* state() override { return &st_; }

#ifndef NSVQ_CUDA_EMU  // the CPU emulator has no stream capture: graphs launch normally there
  // One recorded compute(): the instantiated CUDA graph and the index-error checks its kernels
  // registered while being recorded (their slots are re-armed for every replay).
  struct Captured {
    cudaGraphExec_t exec = nullptr;
    std::vector<CudaErrCheck> checks;
  };
  void* capture(const std::function<void()>& record) override {
    sync();  // earlier work done and checked: the error slots start empty
    if (cudaStreamBeginCapture(st_.stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    std::exception_ptr err;
    bool overflow = false;
    st_.capturing = true;
    try {
      record();
    } catch (const CudaCaptureOverflow&) {
      overflow = true;
    } catch (...) {
      err = std::current_exception();
    }
    st_.capturing = false;
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(st_.stream, &graph);
    std::vector<CudaErrCheck> checks;
    checks.swap(st_.pending);  // nothing ran: nothing to check now
    if (err) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      std::rethrow_exception(err);  // a real error of an op (shapes, sizes): not a capture problem
    }
    if (overflow || e != cudaSuccess || !graph) {  // something in the step cannot be recorded: launch normally
      cudaGetLastError();
      if (graph) cudaGraphDestroy(graph);
      return nullptr;
    }
    cudaGraphExec_t exec = nullptr;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    return new Captured{exec, std::move(checks)};
  }
  void replay(void* exec) override {
    Captured* c = (Captured*)exec;
    cuda_use_device(st_.device);
    st_.pending = c->checks;  // the kernels report into the same slots as when recorded
    CUDA_CHECK(cudaGraphLaunch(c->exec, st_.stream));
  }
  void release(void* exec) override {
    Captured* c = (Captured*)exec;
    if (c->exec && cudaGraphExecDestroy(c->exec) != cudaSuccess) cudaGetLastError();
    delete c;
  }
#endif

 private:
  CudaState st_;
  std::string name_;
};

}  // namespace

// ------------------------------------------------------------------------------------ public API

bool cuda_compiled() { return true; }

int cuda_device_count() { return discover().count; }

std::vector<std::string> cuda_device_names() {
  std::vector<std::string> r;
  for (int d = 0; d < cuda_device_count(); d++) r.push_back(device_label(d));
  return r;
}

std::string cuda_compiled_archs() { return normalized_archs(); }

Backend* backend_cuda(int device) {
  const Discovery& dv = discover();
  if (dv.count == 0) fail("CUDA is not available: %s (use --device cpu)", dv.why.c_str());
  if (device < 0 || device >= dv.count)
    fail("cuda:%d: no such device (%d CUDA device%s found: cuda:0..cuda:%d)", device, dv.count, dv.count == 1 ? "" : "s",
         dv.count - 1);
  static std::mutex mu;
  static std::vector<CudaBackend*> backends;
  std::lock_guard<std::mutex> lock(mu);
  if (backends.empty()) backends.assign((size_t)dv.count, nullptr);
  if (!backends[device]) backends[device] = new CudaBackend(device);  // intentionally never freed
  return backends[device];
}

}  // namespace nsvq
