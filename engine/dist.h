// engine/dist.h — the process group of data-parallel training: rank, size and the collectives the
// trainer needs. Processes are launched and connected by MPI (OpenMPI's mpirun, Slurm's srun);
// host-memory collectives use MPI, CUDA device memory uses NCCL (its id broadcast over MPI) when the
// build has it, else MPI through host copies. A build without MPI is a group of one and says so when
// it is launched as several ranks.
//
// Every sum is deterministic and identical on every rank, whatever MPI's algorithm choice: the
// reduce-scatter exchanges equal chunks (each rank adds its chunk over ranks in rank order
// 0..R-1), then the sums are gathered back. Waits poll with a deadline (timeout_s): a rank that died
// or hangs ends the others' collectives with an Error instead of a hang.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nsvq {

class Dist {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // rank among the processes of this machine
  bool active() const { return size_ > 1; }
  double timeout_s = 600.0;  // longest wait for the other ranks in one collective

  // x[0..n) = sum over ranks (times `scale`), bitwise the same on every rank.
  void allreduce_sum(float* x, int64_t n, float scale = 1.0f);
  // recv [R * bytes] = every rank's `bytes` of send, in rank order.
  void allgather(const void* send, void* recv, size_t bytes);
  // recv [n] = sum over ranks of their send[rank * n .. (rank + 1) * n), in rank order.
  void reduce_scatter_sum(const float* send, float* recv, int64_t n);
  // root's bytes to every rank (the size must agree).
  void broadcast(void* data, size_t bytes, int root = 0);
  // max over ranks, for flags and counts.
  int64_t allreduce_max(int64_t v);
  void barrier();

  // The same on CUDA device memory (stream: the backend's cudaStream_t); NCCL when built with it.
  void device_allreduce_sum(float* x, int64_t n, float scale, void* stream);
  void device_allgather(const void* send, void* recv, size_t bytes, void* stream);
  void device_reduce_scatter_sum(const float* send, float* recv, int64_t n, void* stream);

  // What the group runs on, e.g. "2 ranks over MPI (Open MPI v4.1.4), NCCL for CUDA" or "1 rank".
  std::string describe() const;

 private:
  friend void dist_init(bool);
  friend void dist_finalize();
  friend void dist_abort(int);
  void wait(void* request, const char* what);  // polls an MPI_Request until done or timeout_s
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  bool mpi_ = false;
  [[maybe_unused]] void* nccl_ = nullptr;  // ncclComm_t, created at the first device collective (CUDA builds)
  std::vector<float> buf_;  // exchange buffer of the host collectives
};

// The process group (a group of one until dist_init connects it).
Dist& dist();
// Whether this build has MPI / NCCL.
bool dist_mpi_compiled();
bool dist_nccl_compiled();
// "MPI (Open MPI v4.1.4), NCCL" / "none (built without MPI)": what `nsvq info` shows.
std::string dist_build_info();
// Number of ranks the launcher started (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX / Slurm variables), 1 when
// none.
int dist_launched_size();
// Connects the ranks when launched as several (MPI_Init). Fails clearly when this build has no MPI
// and the launcher started several ranks. require_mpi: connect even a single launched rank.
void dist_init(bool require_mpi = false);
void dist_finalize();
// Ends every rank of the job (MPI_Abort) — for the command line after an error on one rank, whose
// peers may be waiting in a collective. Returns only when there is no MPI group.
void dist_abort(int code);

}  // namespace nsvq
