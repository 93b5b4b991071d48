// engine/graph.h — Store (persistent tensors: parameters, optimizer state, buffers) and Graph
// (a define-then-run computation: ops record nodes, backward appends gradient nodes, plan()
// places every intermediate in one liveness-planned arena, compute() runs the nodes in order).
//
// Typical step:
//   Graph g(be);  Tensor* x = g.input(DType::f32, {B, 784}, "x");
//   Tensor* loss = cross_entropy(g, linear(g, x, W, b), labels);  g.mark_loss(loss);
//   g.backward(loss);   adam.append_update(g);   g.plan();
//   for (...) { g.set_f32(x, batch); g.compute(); float l = g.get_scalar(loss); }
#pragma once
#include <deque>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>
#include "engine/backend.h"

namespace nsvq {

// Owns tensor structs (not their memory).
class TensorPool {
 public:
  Tensor* make(DType dt, const Shape& s, const std::string& name, void* owner, const void* backend);
  size_t size() const { return tensors_.size(); }
 private:
  std::deque<Tensor> tensors_;
};

class Store {
 public:
  explicit Store(Backend* be);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Allocates a zeroed persistent tensor. flags: TF_PARAM for trainables, TF_PERSIST for state.
  Tensor* add(const std::string& name, DType dt, const Shape& s, uint32_t flags = TF_PARAM, int group = 0);
  Tensor* find(const std::string& name) const;  // nullptr when missing
  Tensor* get(const std::string& name) const;   // throws Error when missing
  const std::vector<Tensor*>& tensors() const { return list_; }
  // Trainable parameters (TF_PARAM, not TF_FROZEN); group < 0: all groups.
  std::vector<Tensor*> params(int group = -1) const;
  void set_frozen(Tensor* t, bool frozen);

  void upload(Tensor* t, const void* host, size_t bytes);
  void download(const Tensor* t, void* host, size_t bytes) const;
  void upload_f32(Tensor* t, const std::vector<float>& v);
  std::vector<float> download_f32(const Tensor* t) const;
  size_t bytes() const { return bytes_; }
  Backend* backend() const { return be_; }
  // Set before registering a model whose weights will all be loaded from a file: initial values are
  // not computed (tensors stay zero until loaded), which saves the work and the host memory.
  bool skip_init = false;

 private:
  Backend* be_;
  TensorPool pool_;
  std::vector<Tensor*> list_;
  std::unordered_map<std::string, Tensor*> by_name_;
  size_t bytes_ = 0;
};

struct LossTerm {
  Tensor* loss;
  float weight;
};

class Graph {
 public:
  explicit Graph(Backend* be);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Backend* backend() const { return be_; }

  // ---- leaves
  Tensor* input(DType dt, const Shape& s, const std::string& name);  // host-written, persists across steps
  Tensor* constant(const Shape& s, float value);                      // f32 filled at plan()
  Tensor* constant_data(const Shape& s, const std::vector<float>& values);

  // ---- node creation (for ops/)
  // A new node of op `op` with its own storage. Inputs must belong to this graph or a Store on the
  // same backend.
  Tensor* new_node(int op, DType dt, const Shape& s, std::initializer_list<Tensor*> srcs);
  Tensor* new_node(int op, DType dt, const Shape& s, const std::vector<Tensor*>& srcs);
  // A view of `src` (no storage): shape s, element strides, element offset relative to src's data.
  Tensor* new_view(int op, Tensor* src, const Shape& s, const int64_t* strides, int64_t offset);

  void mark_output(Tensor* t) { t->flags |= TF_OUTPUT; }
  void mark_loss(Tensor* t) { t->flags |= TF_LOSS | TF_OUTPUT; }

  // ---- autograd
  // Gradients of sum_i weight_i * loss_i with respect to each tensor in `wrt` (nullptr where no
  // path leads). Only nodes on a path from a `wrt` tensor to a loss get gradient nodes; detached
  // tensors and frozen parameters stop the path. Can be called several times on one graph.
  std::vector<Tensor*> gradients(const std::vector<LossTerm>& losses, const std::vector<Tensor*>& wrt);
  // Gradients of the weighted losses for every trainable parameter the losses depend on
  // (optionally only those of `group`); read them with grad(param).
  void backward(const std::vector<LossTerm>& losses, int group = -1);
  void backward(Tensor* loss) { backward({{loss, 1.0f}}); }
  Tensor* grad(const Tensor* param) const;  // nullptr if none
  // For backward rules: adds gx to the gradient of x (if x is on the current path).
  void accumulate_grad(Tensor* x, Tensor* gx);
  bool on_path(const Tensor* x) const;

  // ---- planning and execution
  void plan();      // allocates everything; called by compute() if needed; no allocation after it
  void compute();   // runs every needed node in order, synchronously
  // Per-op timing of compute() (synchronises after every node: for diagnosis, not production).
  void set_profile(bool on) { profile_ = on; }
  // CUDA: record the launches of the first compute() as a CUDA graph and replay it afterwards (the
  // step's launches cost one call). Default: on when NSVQ_CUDA_GRAPH=1. No effect on the CPU or
  // while profiling; falls back to normal launches when the backend cannot capture.
  void set_replay(bool on) { replay_on_ = on; }
  bool replay_on() const { return replay_on_; }  // asked for (set_replay or NSVQ_CUDA_GRAPH); CUDA only
  std::string profile_report() const;  // total ms per op name over the profiled computes, largest first
  bool planned() const { return planned_; }

  size_t arena_bytes() const { return arena_peak_; }          // planned activation+gradient arena
  size_t intermediates_bytes() const { return interm_sum_; }  // sum of all arena tensors' sizes
  size_t io_bytes() const { return io_bytes_; }
  size_t scratch_bytes() const { return scratch_bytes_; }
  int node_count() const { return (int)order_.size(); }      // nodes executed per compute()
  const std::vector<Tensor*>& nodes() const { return nodes_; }
  std::string plan_summary() const;

  // ---- host IO (tensor must be contiguous: inputs, outputs, constants, Store tensors)
  void set_f32(Tensor* t, const float* v, size_t n);
  void set_f32(Tensor* t, const std::vector<float>& v) { set_f32(t, v.data(), v.size()); }
  void set_i32(Tensor* t, const int32_t* v, size_t n);
  void set_i32(Tensor* t, const std::vector<int32_t>& v) { set_i32(t, v.data(), v.size()); }
  std::vector<float> get_f32(const Tensor* t) const;
  std::vector<int32_t> get_i32(const Tensor* t) const;
  float get_scalar(const Tensor* t) const;

 private:
  void check_src(const char* op, Tensor* s) const;
  bool owns(const Tensor* t) const { return t->owner == this; }

  Backend* be_;
  TensorPool pool_;
  std::vector<Tensor*> nodes_;  // creation order == a valid topological order
  std::vector<Tensor*> order_;  // planned execution order (needed kernel nodes)
  std::unordered_map<const Tensor*, std::vector<float>> const_values_;
  // autograd state of the current gradients() call and the last backward()
  std::unordered_set<const Tensor*> path_;  // on the current gradient path
  std::unordered_map<const Tensor*, Tensor*> cur_grad_;
  std::unordered_map<const Tensor*, Tensor*> param_grad_;

  bool planned_ = false;
  bool profile_ = false;
  bool replay_on_ = false, replay_failed_ = false;
  void* replay_ = nullptr;   // the backend's recorded launches
  std::vector<char> fresh_;  // per order_ entry: its output is a fresh arena allocation (NSVQ_POISON)
  std::unordered_map<std::string, std::pair<double, int64_t>> prof_;  // op -> (ms, calls)
  void* arena_ = nullptr;
  void* io_ = nullptr;
  void* scratch_ = nullptr;
  size_t arena_peak_ = 0, interm_sum_ = 0, io_bytes_ = 0, scratch_bytes_ = 0;
};

}  // namespace nsvq
