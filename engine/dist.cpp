// engine/dist.cpp — the process group over MPI (engine/dist.h): initialisation from the launcher's
// environment, the deterministic host collectives with deadline-polled waits, and abort. Without
// NSVQ_MPI the group is one process; the device collectives live in engine/cuda/dist_cuda.cu.
#include "engine/dist.h"
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include "engine/tensor.h"
#ifdef NSVQ_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only (no deprecated C++ bindings to link)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace nsvq {

Dist& dist() {
  static Dist d;
  return d;
}

bool dist_mpi_compiled() {
#ifdef NSVQ_MPI
  return true;
#else
  return false;
#endif
}

int dist_launched_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"}) {
    const char* s = std::getenv(v);
    if (s && *s) {
      int n = std::atoi(s);
      if (n > 0) return n;
    }
  }
  return 1;
}

#ifdef NSVQ_MPI

namespace {
[[noreturn]] void mpi_fail(int rc, const char* what) {
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("%s failed: %s", what, msg);
}
#define MPI_CHECK(call, what)              \
  do {                                     \
    int rc_ = (call);                      \
    if (rc_ != MPI_SUCCESS) mpi_fail(rc_, what); \
  } while (0)

// Elements per exchange round: bounds the exchange buffer (2 x 32 MB) whatever the message size.
constexpr int64_t SEG = 8 << 20;
}  // namespace

void dist_init(bool require_mpi) {
  Dist& d = dist();
  if (d.mpi_) return;
  if (dist_launched_size() <= 1 && !require_mpi) return;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);  // errors become nsvq::Error, not aborts
  d.mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &d.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &d.size_);
  MPI_Comm local;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d.rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
  MPI_Comm_rank(local, &d.local_rank_);
  MPI_Comm_free(&local);
}

void dist_finalize() {
  Dist& d = dist();
  if (!d.mpi_) return;
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
  d.mpi_ = false;
}

void dist_abort(int code) {
  if (dist().mpi_ && dist().size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

void Dist::wait(void* request, const char* what) {
  MPI_Request* req = (MPI_Request*)request;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t spin = 0;; spin++) {
    int done = 0;
    MPI_CHECK(MPI_Test(req, &done, MPI_STATUS_IGNORE), what);  // also what moves a nonblocking collective on
    if (done) return;
    if ((spin & 255) != 255) continue;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > timeout_s)
      fail("rank %d of %d: no answer from the other ranks for %.0f s in %s (a rank died or hangs); stopping", rank_,
           size_, s, what);
    // the first 20 ms: yield between polls (a collective's peers are usually close behind); then
    // sleep, so that a rank waiting for a slow one (rank 0 writing a checkpoint) leaves the cores free
    if (s < 0.02)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void Dist::allreduce_sum(float* x, int64_t n, float scale) {
  if (size_ == 1) {
    if (scale != 1.0f)
      for (int64_t i = 0; i < n; i++) x[i] *= scale;
    return;
  }
  const int R = size_;
  for (int64_t s0 = 0; s0 < n; s0 += SEG) {
    const int64_t m = std::min(SEG, n - s0), chunk = (m + R - 1) / R;
    // x itself is the send and the final receive buffer when it splits into R equal chunks; else a
    // padded copy
    const bool direct = m % R == 0;
    buf_.resize((size_t)((direct ? R + 1 : 2 * R) * chunk));
    float *snd = x + s0, *rcv = buf_.data(), *acc = rcv + R * chunk;
    if (!direct) {
      snd = acc;
      std::copy(x + s0, x + s0 + m, snd);
      std::fill(snd + m, snd + R * chunk, 0.0f);  // the last chunk's padding
    }
    MPI_Request req;
    MPI_CHECK(MPI_Ialltoall(snd, (int)chunk, MPI_FLOAT, rcv, (int)chunk, MPI_FLOAT, MPI_COMM_WORLD, &req), "all-reduce");
    wait(&req, "all-reduce (exchange)");
    // this rank's chunk: the sum over ranks in rank order (into acc, which the exchange no longer reads)
    for (int64_t j = 0; j < chunk; j++) acc[j] = rcv[j];
    for (int r = 1; r < R; r++)
      for (int64_t j = 0; j < chunk; j++) acc[j] += rcv[r * chunk + j];
    if (scale != 1.0f)
      for (int64_t j = 0; j < chunk; j++) acc[j] *= scale;
    float* out = direct ? x + s0 : rcv;
    MPI_CHECK(MPI_Iallgather(acc, (int)chunk, MPI_FLOAT, out, (int)chunk, MPI_FLOAT, MPI_COMM_WORLD, &req), "all-reduce");
    wait(&req, "all-reduce (gather)");
    if (!direct) std::copy(rcv, rcv + m, x + s0);
  }
}

void Dist::allgather(const void* send, void* recv, size_t bytes) {
  if (size_ == 1) {
    if (recv != send) std::memcpy(recv, send, bytes);
    return;
  }
  if (bytes > (size_t)INT32_MAX) fail("all-gather of %zu bytes per rank: more than 2 GB", bytes);
  MPI_Request req;
  MPI_CHECK(MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD, &req), "all-gather");
  wait(&req, "all-gather");
}

void Dist::reduce_scatter_sum(const float* send, float* recv, int64_t n) {
  if (size_ == 1) {
    if (recv != send) std::copy(send, send + n, recv);
    return;
  }
  if (n > INT32_MAX) fail("reduce-scatter of %lld values per rank: too many", (long long)n);
  const int R = size_;
  buf_.resize((size_t)(R * n));
  MPI_Request req;
  MPI_CHECK(MPI_Ialltoall(send, (int)n, MPI_FLOAT, buf_.data(), (int)n, MPI_FLOAT, MPI_COMM_WORLD, &req), "reduce-scatter");
  wait(&req, "reduce-scatter");
  for (int64_t j = 0; j < n; j++) recv[j] = buf_[(size_t)j];
  for (int r = 1; r < R; r++)
    for (int64_t j = 0; j < n; j++) recv[j] += buf_[(size_t)(r * n + j)];
}

void Dist::broadcast(void* data, size_t bytes, int root) {
  if (size_ == 1) return;
  MPI_Request req;
  for (size_t off = 0; off < bytes; off += (size_t)1 << 30) {
    int m = (int)std::min(bytes - off, (size_t)1 << 30);
    MPI_CHECK(MPI_Ibcast((char*)data + off, m, MPI_BYTE, root, MPI_COMM_WORLD, &req), "broadcast");
    wait(&req, "broadcast");
  }
}

int64_t Dist::allreduce_max(int64_t v) {
  if (size_ == 1) return v;
  int64_t out = v;
  MPI_Request req;
  MPI_CHECK(MPI_Iallreduce(&v, &out, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD, &req), "all-reduce (max)");
  wait(&req, "all-reduce (max)");
  return out;
}

void Dist::barrier() {
  if (size_ == 1) return;
  MPI_Request req;
  MPI_CHECK(MPI_Ibarrier(MPI_COMM_WORLD, &req), "barrier");
  wait(&req, "barrier");
}

std::string dist_build_info() {
  char ver[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(ver, &len);  // allowed before MPI_Init
  std::string v(ver, strnlen(ver, sizeof ver));
  return "MPI (" + v.substr(0, v.find_first_of(",\n")) + ")" + (dist_nccl_compiled() ? ", NCCL for CUDA memory" : "");
}

std::string Dist::describe() const {
  if (!mpi_) return "1 rank";
  return std::to_string(size_) + (size_ == 1 ? " rank" : " ranks") + " over " + dist_build_info();
}

#else  // no MPI: a group of one

void dist_init(bool require_mpi) {
  int n = dist_launched_size();
  if (n > 1 || require_mpi)
    fail("this nsvq was built without MPI; %d ranks need it (install libopenmpi-dev and openmpi-bin, then rebuild: "
         "tools/setup.sh does both)", n);
}
void dist_finalize() {}
void dist_abort(int) {}
void Dist::wait(void*, const char*) {}
void Dist::allreduce_sum(float* x, int64_t n, float scale) {
  if (scale != 1.0f)
    for (int64_t i = 0; i < n; i++) x[i] *= scale;
}
void Dist::allgather(const void* send, void* recv, size_t bytes) {
  if (recv != send) std::memcpy(recv, send, bytes);
}
void Dist::reduce_scatter_sum(const float* send, float* recv, int64_t n) {
  if (recv != send) std::copy(send, send + n, recv);
}
void Dist::broadcast(void*, size_t, int) {}
int64_t Dist::allreduce_max(int64_t v) { return v; }
void Dist::barrier() {}
std::string dist_build_info() { return "none (built without MPI: one process)"; }
std::string Dist::describe() const { return "1 rank (built without MPI)"; }

#endif

#ifndef NSVQ_CUDA
bool dist_nccl_compiled() { return false; }
void Dist::device_allreduce_sum(float*, int64_t, float, void*) { fail("device all-reduce: this build has no CUDA"); }
void Dist::device_allgather(const void*, void*, size_t, void*) { fail("device all-gather: this build has no CUDA"); }
void Dist::device_reduce_scatter_sum(const float*, float*, int64_t, void*) {
  fail("device reduce-scatter: this build has no CUDA");
}
#endif

}  // namespace nsvq
