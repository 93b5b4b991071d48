// tests/cuda_emu/cuda_emu.h — a small CPU emulator of the CUDA subset that engine/cuda and ops/cuda
// use, so the kernels can be run and checked on machines without a GPU (tests/cuda_emu/emu_check.sh).
// Not part of the build. Every CUDA thread of a block is a ucontext fiber run round-robin between
// sync points: __syncthreads, __syncwarp, shuffles and ballots are barriers, and the emulator aborts
// on divergent barriers (threads waiting at different lines), deadlocks, warp primitives in partial
// warps or with exited lanes, and bad launch configurations. Blocks run one after another; shared
// memory is static storage, dynamic shared memory a per-launch buffer. Host API calls act on host
// memory (fresh cudaMalloc memory is filled with 0x7f bytes to catch reliance on zeroed memory);
// cuBLAS SGEMM is a plain column-major reference with double accumulation.
// Not emulated: memory races between threads (fibers never interleave inside a barrier interval),
// timing, float rounding of the device math library (host libm / nsvq_expf are used).
#pragma once
#define NSVQ_CUDA_EMU 1  // code without an emulated counterpart (stream capture) is left out
#include <ucontext.h>
#include <cmath>
using std::isfinite;  // CUDA device code calls the global isfinite
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <tuple>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

namespace emu {
[[noreturn]] inline void die(const char* m, int line) {
  fprintf(stderr, "CUDA-EMU FATAL: %s (line %d)\n", m, line);
  abort();
}
struct Fiber {
  ucontext_t ctx;
  dim3 tid;
  int lin = 0;
  bool done = false;
  char* stack = nullptr;
};
inline Fiber* cur = nullptr;
inline dim3 bidx, bdim, gdim;
inline ucontext_t sched;
inline void* dyn_smem = nullptr;
inline size_t dyn_smem_limit = 48 * 1024;
struct Bar {
  int arrived = 0;
  unsigned gen = 0;
  int line = -1;
};
inline Bar block_bar;
inline Bar warp_bar[32];
inline int block_alive = 0;
inline int warp_alive[32];
inline int warp_size_of[32];
inline uint64_t slot[32][32];
inline long launches = 0, blocks_run = 0;
inline void yield() { swapcontext(&cur->ctx, &sched); }
inline void wait(Bar& b, int alive, int line) {
  if (b.arrived == 0) b.line = line;
  else if (b.line != line) die("threads wait at different barriers (divergent sync)", line);
  unsigned g = b.gen;
  if (++b.arrived == alive) {
    b.arrived = 0;
    b.gen++;
    return;
  }
  long spins = 0;
  while (b.gen == g) {
    yield();
    if (++spins > 20000000) die("deadlock at barrier", line);
  }
}
inline int lane() { return cur->lin & 31; }
inline int warp() { return cur->lin >> 5; }
inline void syncthreads(int line) { wait(block_bar, block_alive, line); }
inline void syncwarp(int line) { wait(warp_bar[warp()], warp_alive[warp()], line); }
inline void check_full_warp(int line) {
  int w = warp();
  if (warp_size_of[w] != 32) die("warp primitive in a partial warp", line);
  if (warp_alive[w] != 32) die("warp primitive with exited lanes", line);
}
template <class T>
T shfl_idx(T v, int src, int line) {
  check_full_warp(line);
  int w = warp(), l = lane();
  static_assert(sizeof(T) <= 8, "");
  std::memcpy(&slot[w][l], &v, sizeof(T));
  syncwarp(line);
  T r;
  std::memcpy(&r, &slot[w][src & 31], sizeof(T));
  syncwarp(line);
  return r;
}
template <class T>
T shfl_down(T v, int off, int line) {
  int src = lane() + off;
  T r = shfl_idx(v, src < 32 ? src : lane(), line);
  return src < 32 ? r : v;
}
template <class T>
T shfl_up(T v, int off, int line) {
  int src = lane() - off;
  T r = shfl_idx(v, src >= 0 ? src : lane(), line);
  return src >= 0 ? r : v;
}
template <class T>
T shfl_xor(T v, int mask, int line) {
  return shfl_idx(v, lane() ^ mask, line);
}
inline unsigned ballot(bool p, int line) {
  check_full_warp(line);
  int w = warp(), l = lane();
  slot[w][l] = p ? 1 : 0;
  syncwarp(line);
  unsigned r = 0;
  for (int k = 0; k < 32; k++)
    if (slot[w][k]) r |= 1u << k;
  syncwarp(line);
  return r;
}

inline std::function<void()>* body = nullptr;
inline void fiber_main() {
  (*body)();
  Fiber* f = cur;
  f->done = true;
  block_alive--;
  int w = f->lin >> 5;
  warp_alive[w]--;
  // threads that exited no longer count at barriers
  if (block_bar.arrived > 0 && block_bar.arrived == block_alive) {
    block_bar.arrived = 0;
    block_bar.gen++;
  }
  if (warp_bar[w].arrived > 0 && warp_bar[w].arrived == warp_alive[w]) {
    warp_bar[w].arrived = 0;
    warp_bar[w].gen++;
  }
  swapcontext(&f->ctx, &sched);
}

inline std::vector<Fiber>& fibers() {
  static std::vector<Fiber> v(1024);
  return v;
}
constexpr size_t STACK = 128 * 1024;

inline int last_error = 0;

inline void run_block(const std::function<void()>& fn, dim3 block) {
  int n = (int)(block.x * block.y * block.z);
  std::vector<Fiber>& fs = fibers();
  body = const_cast<std::function<void()>*>(&fn);
  block_bar = Bar();
  block_alive = n;
  for (int w = 0; w < 32; w++) {
    warp_bar[w] = Bar();
    int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
    warp_size_of[w] = hi > lo ? hi - lo : 0;
    warp_alive[w] = warp_size_of[w];
  }
  for (int i = 0; i < n; i++) {
    Fiber& f = fs[i];
    if (!f.stack) f.stack = (char*)malloc(STACK);
    f.done = false;
    f.lin = i;
    f.tid = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
  }
  int left = n;
  while (left > 0) {
    left = 0;
    for (int i = 0; i < n; i++) {
      if (fs[i].done) continue;
      cur = &fs[i];
      swapcontext(&sched, &fs[i].ctx);
      if (!fs[i].done) left++;
    }
  }
  cur = nullptr;
}

struct Cfg {
  dim3 grid, block;
  size_t smem;
  Cfg(dim3 g, dim3 b, size_t s = 0, void* = nullptr) : grid(g), block(b), smem(s) {}
};

template <class... KA, class... A>
void launch(Cfg c, void (*k)(KA...), A&&... args) {
  unsigned nt = c.block.x * c.block.y * c.block.z;
  if (c.grid.x < 1 || c.grid.y != 1 || nt < 1 || nt > 1024 || c.smem > dyn_smem_limit) {
    fprintf(stderr, "CUDA-EMU: bad launch grid %u block %ux%u smem %zu\n", c.grid.x, c.block.x, c.block.y, c.smem);
    last_error = 9;  // invalid configuration
    return;
  }
  std::tuple<KA...> targs((KA)args...);
  std::vector<char> smem(c.smem + 16);
  dyn_smem = smem.data();
  gdim = c.grid;
  bdim = c.block;
  std::function<void()> fn = [&] { std::apply(k, targs); };
  launches++;
  for (unsigned b = 0; b < c.grid.x; b++) {
    bidx = dim3(b, 0, 0);
    run_block(fn, c.block);
    blocks_run++;
  }
  dyn_smem = nullptr;
}
}  // namespace emu

#define threadIdx (emu::cur->tid)
#define blockIdx (emu::bidx)
#define blockDim (emu::bdim)
#define gridDim (emu::gdim)
#define __syncthreads() emu::syncthreads(__LINE__)
#define __syncwarp(...) emu::syncwarp(__LINE__)
#define __shfl_sync(m, v, s) emu::shfl_idx((v), (s), __LINE__)
#define __shfl_down_sync(m, v, o) emu::shfl_down((v), (o), __LINE__)
#define __shfl_up_sync(m, v, o) emu::shfl_up((v), (o), __LINE__)
#define __shfl_xor_sync(m, v, x) emu::shfl_xor((v), (x), __LINE__)
#define __ballot_sync(m, p) emu::ballot((p), __LINE__)
#define __any_sync(m, p) (emu::ballot((p), __LINE__) != 0u)
#define __all_sync(m, p) (emu::ballot(!(p), __LINE__) == 0u)
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
template <class T> inline T __ldg(const T* p) { return *p; }
// atomics: fibers never run concurrently, so plain read-modify-write is atomic here
template <class T> inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T> inline T atomicMin(T* p, T v) { T o = *p; if (v < o) *p = v; return o; }
template <class T> inline T atomicMax(T* p, T v) { T o = *p; if (v > o) *p = v; return o; }
template <class T> inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T> inline T atomicCAS(T* p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }

// ---------------------------------------------------------------- runtime API
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorUnsupportedPtxVersion = 222,
};
typedef void* cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
#define cudaStreamNonBlocking 1
struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
  size_t totalGlobalMem;
};
struct cudaFuncAttributes {
  int numRegs;
};
inline const char* cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
inline const char* cudaGetErrorName(cudaError_t e) { return e ? "cudaErrorEmu" : "cudaSuccess"; }
inline cudaError_t cudaGetLastError() {
  int e = emu::last_error;
  emu::last_error = 0;
  return (cudaError_t)e;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline int emu_sm_count() {
  const char* s = getenv("EMU_SMS");
  return s ? atoi(s) : 2;  // EMU_SMS: the SM count kernels size their grids by
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::strcpy(p->name, "CUDA-EMU");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = emu_sm_count();
  p->totalGlobalMem = (size_t)1 << 32;
  return cudaSuccess;
}
template <class F>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, F) {
  a->numRegs = 0;
  return cudaSuccess;
}
inline cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int v) {
  if ((size_t)v > emu::dyn_smem_limit) emu::dyn_smem_limit = (size_t)v;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = 227 * 1024;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, int) {
  *s = (void*)1;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
// fill fresh allocations with garbage so that kernels relying on zeroed memory are caught
inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = aligned_alloc(256, (n + 255) / 256 * 256);
  if (!*p) return cudaErrorMemoryAllocation;
  std::memset(*p, 0x7f, n);
  return cudaSuccess;
}
template <class T>
cudaError_t cudaMalloc(T** p, size_t n) {
  return cudaMalloc((void**)p, n);
}
template <class T>
cudaError_t cudaMallocHost(T** p, size_t n) {
  return cudaMalloc((void**)p, n);
}
inline cudaError_t cudaFree(void* p) {
  free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* f, size_t* t) {
  *f = *t = 0;
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t = nullptr) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t = nullptr) {
  std::memset(d, v, n);
  return cudaSuccess;
}

// ---------------------------------------------------------------- cuBLAS (reference, column-major)
typedef void* cublasHandle_t;
enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
  CUBLAS_STATUS_LICENSE_ERROR = 16
};
enum cublasOperation_t { CUBLAS_OP_N, CUBLAS_OP_T };
enum cublasMath_t { CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH };  // TF32: the emulator computes in fp32
enum cublasPointerMode_t { CUBLAS_POINTER_MODE_HOST };
inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = (void*)1;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetPointerMode(cublasHandle_t, cublasPointerMode_t) { return CUBLAS_STATUS_SUCCESS; }
inline long emu_gemms = 0;
inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                                int k, const float* alpha, const float* A, int lda, long long sa,
                                                const float* B, int ldb, long long sb, const float* beta, float* C,
                                                int ldc, long long sc, int batch) {
  // C (m x n) = alpha op(A) op(B) + beta C; op(A) m x k, op(B) k x n; column-major
  if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  int rowsA = ta == CUBLAS_OP_N ? m : k, rowsB = tb == CUBLAS_OP_N ? k : n;
  if (lda < (rowsA > 1 ? rowsA : 1) || ldb < (rowsB > 1 ? rowsB : 1) || ldc < (m > 1 ? m : 1))
    return CUBLAS_STATUS_INVALID_VALUE;
  emu_gemms++;
  for (int b = 0; b < batch; b++) {
    const float *Ab = A + b * sa, *Bb = B + b * sb;
    float* Cb = C + b * sc;
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        double acc = 0;
        for (int p = 0; p < k; p++) {
          float a = ta == CUBLAS_OP_N ? Ab[i + (long)p * lda] : Ab[p + (long)i * lda];
          float bb = tb == CUBLAS_OP_N ? Bb[p + (long)j * ldb] : Bb[j + (long)p * ldb];
          acc += (double)a * bb;
        }
        float prev = *beta == 0.0f ? 0.0f : *beta * Cb[i + (long)j * ldc];
        Cb[i + (long)j * ldc] = (float)(*alpha * acc) + prev;
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float* alpha, const float* A, int lda, const float* B, int ldb,
                                  const float* beta, float* C, int ldc) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
