// engine/cuda/dist_cuda.cu — the device collectives of engine/dist.h: NCCL on the backend's stream when
// the build has it (the communicator is created at the first call, its id broadcast over MPI), else
// MPI through host copies. Waits poll the stream with dist().timeout_s as the deadline: a peer that
// died ends the wait with an Error (and aborts the NCCL communicator) instead of a hang.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>
#include "engine/cuda/cuda_common.cuh"
#include "engine/dist.h"
#ifdef NSVQ_NCCL
#include <nccl.h>
#endif

namespace nsvq {

bool dist_nccl_compiled() {
#ifdef NSVQ_NCCL
  return true;
#else
  return false;
#endif
}

namespace {
__global__ void scale_kernel(float* x, int64_t n, float s) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) x[i] *= s;
}

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("%s: %s", what, cudaGetErrorString(e));
}

#ifdef NSVQ_NCCL
void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) fail("%s: %s", what, ncclGetErrorString(r));
}
#endif

// Waits for the stream with a deadline; comm (an ncclComm_t or nullptr) is aborted on a timeout.
void stream_wait(cudaStream_t s, void* comm, const char* what) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int spin = 0;; spin++) {
    cudaError_t e = cudaStreamQuery(s);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) check_cuda(e, what);
#ifdef NSVQ_NCCL
    if (comm) {
      ncclResult_t ar = ncclSuccess;
      ncclCommGetAsyncError((ncclComm_t)comm, &ar);
      if (ar != ncclSuccess && ar != ncclInProgress) {
        ncclCommAbort((ncclComm_t)comm);
        fail("%s: NCCL reports %s", what, ncclGetErrorString(ar));
      }
    }
#endif
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sec > dist().timeout_s) {
#ifdef NSVQ_NCCL
      if (comm) ncclCommAbort((ncclComm_t)comm);
#endif
      fail("rank %d of %d: no answer from the other ranks for %.0f s in %s (a rank died or hangs); stopping",
           dist().rank(), dist().size(), sec, what);
    }
    if (spin > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// Host-staged: copies device -> host, runs the host collective, copies back.
template <class F>
void staged(const void* src, size_t src_bytes, void* dst, size_t dst_bytes, cudaStream_t s, F host_op) {
  std::vector<char> a(src_bytes), b(dst_bytes);
  check_cuda(cudaMemcpyAsync(a.data(), src, src_bytes, cudaMemcpyDeviceToHost, s), "collective (copy out)");
  check_cuda(cudaStreamSynchronize(s), "collective (copy out)");
  host_op(a.data(), b.data());
  check_cuda(cudaMemcpyAsync(dst, b.data(), dst_bytes, cudaMemcpyHostToDevice, s), "collective (copy in)");
  check_cuda(cudaStreamSynchronize(s), "collective (copy in)");
}
}  // namespace

#ifdef NSVQ_NCCL
static ncclComm_t nccl_comm(Dist& d, void*& slot) {
  if (!slot) {
    ncclUniqueId id;
    if (d.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    d.broadcast(&id, sizeof id, 0);
    ncclComm_t c = nullptr;
    check_nccl(ncclCommInitRank(&c, d.size(), id, d.rank()), "ncclCommInitRank");
    slot = c;
  }
  return (ncclComm_t)slot;
}
#endif

void Dist::device_allreduce_sum(float* x, int64_t n, float scale, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  if (size_ > 1) {
#ifdef NSVQ_NCCL
    ncclComm_t c = nccl_comm(*this, nccl_);
    check_nccl(ncclAllReduce(x, x, (size_t)n, ncclFloat, ncclSum, c, s), "ncclAllReduce");
    stream_wait(s, c, "all-reduce (NCCL)");
#else
    staged(x, (size_t)n * 4, x, (size_t)n * 4, s, [&](char* a, char* b) {
      allreduce_sum((float*)a, n, 1.0f);
      std::memcpy(b, a, (size_t)n * 4);
    });
#endif
  }
  if (scale != 1.0f && n > 0) {
    scale_kernel<<<(unsigned)std::min<int64_t>((n + 255) / 256, 4096), 256, 0, s>>>(x, n, scale);
    check_cuda(cudaGetLastError(), "all-reduce (scale)");
  }
}

void Dist::device_allgather(const void* send, void* recv, size_t bytes, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  if (size_ == 1) {
    if (recv != send) check_cuda(cudaMemcpyAsync(recv, send, bytes, cudaMemcpyDeviceToDevice, s), "all-gather");
    return;
  }
#ifdef NSVQ_NCCL
  ncclComm_t c = nccl_comm(*this, nccl_);
  check_nccl(ncclAllGather(send, recv, bytes, ncclUint8, c, s), "ncclAllGather");
  stream_wait(s, c, "all-gather (NCCL)");
#else
  staged(send, bytes, recv, bytes * size_, s, [&](char* a, char* b) { allgather(a, b, bytes); });
#endif
}

void Dist::device_reduce_scatter_sum(const float* send, float* recv, int64_t n, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  if (size_ == 1) {
    if (recv != send) check_cuda(cudaMemcpyAsync(recv, send, (size_t)n * 4, cudaMemcpyDeviceToDevice, s), "reduce-scatter");
    return;
  }
#ifdef NSVQ_NCCL
  ncclComm_t c = nccl_comm(*this, nccl_);
  check_nccl(ncclReduceScatter(send, recv, (size_t)n, ncclFloat, ncclSum, c, s), "ncclReduceScatter");
  stream_wait(s, c, "reduce-scatter (NCCL)");
#else
  staged(send, (size_t)n * 4 * size_, recv, (size_t)n * 4, s,
         [&](char* a, char* b) { reduce_scatter_sum((const float*)a, (float*)b, n); });
#endif
}

}  // namespace nsvq
