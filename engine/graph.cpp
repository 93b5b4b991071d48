// engine/graph.cpp — Store and Graph: node recording, the autograd driver (backward as more graph
// nodes), the liveness memory planner and execution.
#include "engine/graph.h"
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <unordered_set>

namespace nsvq {

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

Tensor* TensorPool::make(DType dt, const Shape& s, const std::string& name, void* owner, const void* backend) {
  tensors_.emplace_back();
  Tensor* t = &tensors_.back();
  t->id = (int)tensors_.size() - 1;
  t->dtype = dt;
  t->ndim = s.ndim;
  for (int i = 0; i < s.ndim; i++) {
    if (s.ne[i] < 0) fail("tensor '%s': negative extent in shape %s", name.c_str(), s.str().c_str());
    t->ne[i] = s.ne[i];
  }
  tensor_set_contiguous_strides(t);
  t->name = name;
  t->owner = owner;
  t->backend = backend;
  return t;
}

// ------------------------------------------------------------------------------------ Store

Store::Store(Backend* be) : be_(be) {}

Store::~Store() {
  for (Tensor* t : list_)
    if (t->data) be_->dealloc(t->data);
}

Tensor* Store::add(const std::string& name, DType dt, const Shape& s, uint32_t flags, int group) {
  if (by_name_.count(name)) fail("store: tensor '%s' added twice", name.c_str());
  Tensor* t = pool_.make(dt, s, name, this, be_);
  t->flags = flags;
  t->group = group;
  size_t nb = std::max<size_t>(t->nbytes(), 1);
  t->data = be_->alloc(nb, name.c_str());
  be_->memset_zero(t->data, nb);
  bytes_ += nb;
  list_.push_back(t);
  by_name_[name] = t;
  return t;
}

Tensor* Store::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

Tensor* Store::get(const std::string& name) const {
  Tensor* t = find(name);
  if (!t) fail("store: no tensor named '%s'", name.c_str());
  return t;
}

std::vector<Tensor*> Store::params(int group) const {
  std::vector<Tensor*> r;
  for (Tensor* t : list_)
    if (t->has(TF_PARAM) && !t->has(TF_FROZEN) && (group < 0 || t->group == group)) r.push_back(t);
  return r;
}

void Store::set_frozen(Tensor* t, bool frozen) {
  if (frozen) t->flags |= TF_FROZEN;
  else t->flags &= ~TF_FROZEN;
}

void Store::upload(Tensor* t, const void* host, size_t bytes) {
  if (bytes != t->nbytes()) fail("store: upload of %zu bytes into %s (%zu bytes)", bytes, t->desc().c_str(), t->nbytes());
  be_->copy_in(t->data, host, bytes);
}

void Store::download(const Tensor* t, void* host, size_t bytes) const {
  if (bytes != t->nbytes()) fail("store: download of %zu bytes from %s (%zu bytes)", bytes, t->desc().c_str(), t->nbytes());
  be_->copy_out(host, t->data, bytes);
}

void Store::upload_f32(Tensor* t, const std::vector<float>& v) {
  if (t->dtype != DType::f32) fail("store: %s is not f32", t->desc().c_str());
  upload(t, v.data(), v.size() * sizeof(float));
}

std::vector<float> Store::download_f32(const Tensor* t) const {
  if (t->dtype != DType::f32) fail("store: %s is not f32", t->desc().c_str());
  std::vector<float> v((size_t)t->numel());
  download(t, v.data(), v.size() * sizeof(float));
  return v;
}

// ------------------------------------------------------------------------------------ Graph

Graph::Graph(Backend* be) : be_(be) {
  static const bool replay_env = [] {
    const char* v = getenv("NSVQ_CUDA_GRAPH");
    return v && *v && std::string(v) != "0";
  }();
  replay_on_ = replay_env;
}

Graph::~Graph() {
  if (replay_) be_->release(replay_);
  if (arena_) be_->dealloc(arena_);
  if (io_) be_->dealloc(io_);
  if (scratch_) be_->dealloc(scratch_);
}

Tensor* Graph::input(DType dt, const Shape& s, const std::string& name) {
  if (planned_) fail("graph: input '%s' added after plan()", name.c_str());
  Tensor* t = pool_.make(dt, s, name, this, be_);
  t->flags = TF_INPUT | TF_NO_GRAD;
  nodes_.push_back(t);
  return t;
}

Tensor* Graph::constant(const Shape& s, float value) {
  return constant_data(s, std::vector<float>((size_t)s.numel(), value));
}

Tensor* Graph::constant_data(const Shape& s, const std::vector<float>& values) {
  if (planned_) fail("graph: constant added after plan()");
  if ((int64_t)values.size() != s.numel())
    fail("graph: constant of shape %s given %zu values", s.str().c_str(), values.size());
  Tensor* t = pool_.make(DType::f32, s, "const", this, be_);
  t->flags = TF_CONST | TF_NO_GRAD;
  const_values_[t] = values;
  nodes_.push_back(t);
  return t;
}

void Graph::check_src(const char* op, Tensor* s) const {
  if (!s) fail("%s: null input", op);
  if (!owns(s) && !s->data) fail("%s: input %s belongs to no graph or store", op, s->desc().c_str());
  if (s->backend != be_)
    fail("%s: input %s lives on another backend than this graph (%s)", op, s->desc().c_str(), be_->name().c_str());
}

Tensor* Graph::new_node(int op, DType dt, const Shape& s, std::initializer_list<Tensor*> srcs) {
  return new_node(op, dt, s, std::vector<Tensor*>(srcs));
}

Tensor* Graph::new_node(int op, DType dt, const Shape& s, const std::vector<Tensor*>& srcs) {
  const char* name = op_name(op);
  if (planned_) fail("%s: graph already planned; build a new graph", name);
  if ((int)srcs.size() > MAX_SRC) fail("%s: %zu inputs, at most %d", name, srcs.size(), MAX_SRC);
  if (!op_def(op).kernel[be_->kind()] && !op_def(op).is_view)
    fail("%s: not supported by backend %s (output shape %s)", name, be_->name().c_str(), s.str().c_str());
  Tensor* t = pool_.make(dt, s, "", this, be_);
  t->op = op;
  t->n_src = (int)srcs.size();
  for (size_t i = 0; i < srcs.size(); i++) {
    check_src(name, srcs[i]);
    t->src[i] = srcs[i];
  }
  nodes_.push_back(t);
  return t;
}

Tensor* Graph::new_view(int op, Tensor* src, const Shape& s, const int64_t* strides, int64_t offset) {
  Tensor* t = new_node(op, src->dtype, s, {src});
  for (int i = 0; i < s.ndim; i++) t->nb[i] = strides[i];
  t->offset = src->offset + offset;
  t->view_src = src;
  t->flags |= TF_VIEW;
  return t;
}

// ------------------------------------------------------------------------------------ autograd

bool Graph::on_path(const Tensor* x) const { return path_.count(x) != 0; }

void Graph::accumulate_grad(Tensor* x, Tensor* gx) {
  if (!on_path(x)) return;
  if (gx->shape() != x->shape())
    fail("backward: gradient %s does not match %s (op %s)", gx->shape().str().c_str(), x->desc().c_str(), op_name(x->op));
  auto it = cur_grad_.find(x);
  if (it == cur_grad_.end()) cur_grad_[x] = gx;
  else it->second = op_grad_add()(*this, it->second, gx);
}

std::vector<Tensor*> Graph::gradients(const std::vector<LossTerm>& losses, const std::vector<Tensor*>& wrt) {
  if (planned_) fail("backward: graph already planned");
  path_.clear();
  cur_grad_.clear();
  // Forward sweep: a node is on the path when it is a target or consumes a path tensor, unless it
  // stops gradients (detach, integer outputs, comparisons).
  for (Tensor* w : wrt) path_.insert(w);
  for (Tensor* n : nodes_) {
    if (path_.count(n) || n->op == 0 || n->has(TF_NO_GRAD)) continue;
    for (int i = 0; i < n->n_src; i++)
      if (path_.count(n->src[i])) {
        path_.insert(n);
        break;
      }
  }
  size_t n_fwd = nodes_.size();
  for (const LossTerm& l : losses) {
    if (!l.loss) fail("backward: null loss");
    if (l.loss->dtype != DType::f32) fail("backward: loss %s is not f32", l.loss->desc().c_str());
    accumulate_grad(l.loss, constant(l.loss->shape(), l.weight));
  }
  // Reverse sweep over the forward nodes; rules append gradient nodes at the end.
  for (size_t i = n_fwd; i-- > 0;) {
    Tensor* y = nodes_[i];
    if (y->op == 0 || !path_.count(y)) continue;
    auto it = cur_grad_.find(y);
    if (it == cur_grad_.end()) continue;
    const OpDef& d = op_def(y->op);
    if (!d.backward) fail("backward: op %s has no gradient rule (%s)", op_name(y->op), y->desc().c_str());
    d.backward(*this, y, it->second);
  }
  std::vector<Tensor*> r;
  for (Tensor* w : wrt) {
    auto it = cur_grad_.find(w);
    r.push_back(it == cur_grad_.end() ? nullptr : it->second);
  }
  path_.clear();
  cur_grad_.clear();
  return r;
}

void Graph::backward(const std::vector<LossTerm>& losses, int group) {
  std::vector<Tensor*> params;
  std::unordered_set<const Tensor*> seen;
  for (Tensor* n : nodes_)
    for (int i = 0; i < n->n_src; i++) {
      Tensor* s = n->src[i];
      if (!owns(s) && s->has(TF_PARAM) && !s->has(TF_FROZEN) && (group < 0 || s->group == group) && seen.insert(s).second)
        params.push_back(s);
    }
  std::vector<Tensor*> grads = gradients(losses, params);
  for (size_t i = 0; i < params.size(); i++) {
    if (!grads[i]) continue;
    auto it = param_grad_.find(params[i]);
    if (it == param_grad_.end()) param_grad_[params[i]] = grads[i];
    else it->second = op_grad_add()(*this, it->second, grads[i]);
  }
}

Tensor* Graph::grad(const Tensor* param) const {
  auto it = param_grad_.find(param);
  return it == param_grad_.end() ? nullptr : it->second;
}

// ------------------------------------------------------------------------------------ planning

namespace {
// Best-fit allocator over offsets of one arena; adjacent free blocks merge.
struct OffsetAllocator {
  size_t align, top = 0, peak = 0;
  std::map<size_t, size_t> free_blocks;  // offset -> size
  explicit OffsetAllocator(size_t a) : align(a) {}
  size_t alloc(size_t bytes) {
    bytes = align_up(std::max<size_t>(bytes, 1), align);
    auto best = free_blocks.end();
    for (auto it = free_blocks.begin(); it != free_blocks.end(); ++it)
      if (it->second >= bytes && (best == free_blocks.end() || it->second < best->second)) best = it;
    if (best != free_blocks.end()) {
      size_t off = best->first, sz = best->second;
      free_blocks.erase(best);
      if (sz > bytes) free_blocks[off + bytes] = sz - bytes;
      return off;
    }
    // extend the top, absorbing a free block that ends at the top
    size_t off = top;
    if (!free_blocks.empty()) {
      auto last = std::prev(free_blocks.end());
      if (last->first + last->second == top) {
        off = last->first;
        free_blocks.erase(last);
      }
    }
    top = off + bytes;
    peak = std::max(peak, top);
    return off;
  }
  void release(size_t off, size_t bytes) {
    bytes = align_up(std::max<size_t>(bytes, 1), align);
    auto it = free_blocks.emplace(off, bytes).first;
    auto next = std::next(it);
    if (next != free_blocks.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free_blocks.erase(next);
    }
    if (it != free_blocks.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_blocks.erase(it);
        it = prev;
      }
    }
    if (it->first + it->second == top) {  // shrink the top
      top = it->first;
      free_blocks.erase(it);
    }
  }
};
}  // namespace

void Graph::plan() {
  if (planned_) return;
  // 1. which nodes are needed: everything an output, loss or side-effect node depends on
  std::unordered_set<const Tensor*> needed;
  std::vector<Tensor*> stack;
  for (Tensor* n : nodes_)
    if (n->has(TF_OUTPUT) || n->has(TF_SIDE_EFFECT)) stack.push_back(n);
  while (!stack.empty()) {
    Tensor* n = stack.back();
    stack.pop_back();
    if (!owns(n) || !needed.insert(n).second) continue;
    for (int i = 0; i < n->n_src; i++) stack.push_back(n->src[i]);
    if (n->view_src) stack.push_back(n->view_src);
  }
  order_.clear();
  for (Tensor* n : nodes_)
    if (needed.count(n) && n->op != 0 && !op_def(n->op).is_view) order_.push_back(n);

  // 2. inputs and constants: their own persistent buffer
  size_t al = be_->alignment();
  io_bytes_ = 0;
  std::vector<std::pair<Tensor*, size_t>> io_list;
  for (Tensor* n : nodes_)
    if (n->op == 0 && needed.count(n)) {
      io_list.push_back({n, io_bytes_});
      io_bytes_ += align_up(std::max<size_t>(n->nbytes(), 1), al);
    }

  // 3. liveness of arena tensors (executed nodes that own storage)
  const size_t FOREVER = (size_t)-1;
  std::unordered_map<const Tensor*, size_t> last_use;
  for (size_t i = 0; i < order_.size(); i++) {
    Tensor* n = order_[i];
    if (!n->view_src) last_use[n] = i;
    for (int k = 0; k < n->n_src; k++) {
      Tensor* r = n->src[k]->storage_root();
      if (owns(r) && r->op != 0) last_use[r] = std::max(last_use[r], i);
    }
  }
  for (Tensor* n : nodes_)
    if (needed.count(n) && n->has(TF_OUTPUT)) {
      Tensor* r = n->storage_root();
      if (owns(r) && r->op != 0) last_use[r] = FOREVER;
    }

  // 4. place them: allocate at definition, free after last use (never aliasing a node's inputs)
  OffsetAllocator arena(al);
  std::unordered_map<const Tensor*, size_t> offset_of;
  std::vector<std::vector<Tensor*>> frees(order_.size());
  interm_sum_ = 0;
  scratch_bytes_ = 0;
  for (size_t i = 0; i < order_.size(); i++) {
    Tensor* n = order_[i];
    const OpDef& d = op_def(n->op);
    if (d.scratch) scratch_bytes_ = std::max(scratch_bytes_, d.scratch(n, be_->kind()));
    if (n->view_src) continue;  // in-place writers (optimizer updates) own no storage
    offset_of[n] = arena.alloc(n->nbytes());
    interm_sum_ += align_up(std::max<size_t>(n->nbytes(), 1), al);
    size_t lu = last_use[n];
    if (lu != FOREVER) frees[lu].push_back(n);
    for (Tensor* f : frees[i]) arena.release(offset_of[f], f->nbytes());
  }
  arena_peak_ = arena.peak;

  // 5. allocate the three buffers once and resolve every data pointer
  if (arena_peak_) arena_ = be_->alloc(arena_peak_, "activation/gradient arena");
  if (io_bytes_) io_ = be_->alloc(io_bytes_, "graph inputs and constants");
  if (scratch_bytes_) scratch_ = be_->alloc(scratch_bytes_, "kernel scratch");
  for (auto& p : io_list) p.first->data = (char*)io_ + p.second;
  for (auto& p : offset_of) const_cast<Tensor*>(p.first)->data = (char*)arena_ + p.second;
  fresh_.assign(order_.size(), 0);
  for (size_t i = 0; i < order_.size(); i++) fresh_[i] = offset_of.count(order_[i]) != 0;
  for (Tensor* n : nodes_) {
    if (!n->view_src) continue;
    Tensor* r = n->storage_root();
    if (r->data) n->data = (char*)r->data + n->offset * (int64_t)n->elsize();
  }
  if (io_bytes_) be_->memset_zero(io_, io_bytes_);
  for (auto& c : const_values_)
    if (c.first->data) be_->copy_in(c.first->data, c.second.data(), c.second.size() * sizeof(float));
  planned_ = true;
}

std::string Graph::plan_summary() const {
  char buf[256];
  snprintf(buf, sizeof buf, "%d nodes, arena %.2f MiB (intermediates %.2f MiB), io %.2f MiB, scratch %.2f MiB",
           node_count(), arena_peak_ / 1048576.0, interm_sum_ / 1048576.0, io_bytes_ / 1048576.0,
           scratch_bytes_ / 1048576.0);
  return buf;
}

void Graph::compute() {
  if (!planned_) plan();
  // debugging aid: NSVQ_POISON=1 fills every fresh arena output with NaN bytes right before its op
  // runs (CPU), so a kernel that reads its output before writing it shows up as NaN, not as a
  // nondeterministic value left by an earlier node
  static const bool poison = getenv("NSVQ_POISON") != nullptr;
  if (poison && be_->kind() == BK_CPU) {
    for (size_t i = 0; i < order_.size(); i++) {
      if (fresh_[i]) memset(order_[i]->data, 0xff, order_[i]->nbytes());
      be_->execute(order_[i], scratch_, scratch_bytes_);
    }
    be_->sync();
    return;
  }
  if (!profile_) {
    if (replay_on_ && be_->kind() == BK_CUDA && !replay_failed_) {
      if (!replay_) {
        replay_ = be_->capture([&] {
          for (Tensor* n : order_) be_->execute(n, scratch_, scratch_bytes_);
        });
        replay_failed_ = replay_ == nullptr;
      }
      if (replay_) {
        be_->replay(replay_);
        be_->sync();
        return;
      }
    }
    for (Tensor* n : order_) be_->execute(n, scratch_, scratch_bytes_);
    be_->sync();
    return;
  }
  for (Tensor* n : order_) {
    auto t0 = std::chrono::steady_clock::now();
    be_->execute(n, scratch_, scratch_bytes_);
    be_->sync();
    // NSVQ_PROFILE_SHAPES=1: one row per op and shapes (output <- sources) instead of per op
    static const bool by_shape = getenv("NSVQ_PROFILE_SHAPES") != nullptr;
    std::string key = op_name(n->op);
    if (by_shape) {
      key += " " + n->shape().str() + " <-";
      for (int s = 0; s < n->n_src; s++) key += " " + n->src[s]->shape().str();
    }
    auto& p = prof_[key];
    p.first += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    p.second++;
  }
}

std::string Graph::profile_report() const {
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> v(prof_.begin(), prof_.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  double total = 0;
  for (auto& e : v) total += e.second.first;
  std::string r;
  char line[512];
  for (auto& e : v) {
    snprintf(line, sizeof line, "%-22s %10.2f ms %6.1f%% %8lld calls\n", e.first.c_str(), e.second.first,
             total > 0 ? 100.0 * e.second.first / total : 0.0, (long long)e.second.second);
    r += line;
  }
  return r;
}

// ------------------------------------------------------------------------------------ host IO

static void check_io(const Graph* g, const Tensor* t, DType dt, size_t n, const char* what) {
  (void)g;
  if (t->dtype != dt) fail("%s: %s is not %s", what, t->desc().c_str(), dtype_name(dt));
  if ((int64_t)n != t->numel()) fail("%s: %zu values for %s", what, n, t->desc().c_str());
  if (!t->is_contiguous()) fail("%s: %s is not contiguous", what, t->desc().c_str());
  if (!t->data) fail("%s: %s has no storage (not an input/output of this graph?)", what, t->desc().c_str());
}

void Graph::set_f32(Tensor* t, const float* v, size_t n) {
  plan();
  check_io(this, t, DType::f32, n, "set_f32");
  be_->copy_in(t->data, v, n * sizeof(float));
}

void Graph::set_i32(Tensor* t, const int32_t* v, size_t n) {
  plan();
  check_io(this, t, DType::i32, n, "set_i32");
  be_->copy_in(t->data, v, n * sizeof(int32_t));
}

std::vector<float> Graph::get_f32(const Tensor* t) const {
  if (owns(t) && t->op != 0 && !t->has(TF_OUTPUT) && !t->has(TF_SIDE_EFFECT))
    fail("get_f32: %s is not marked as an output", t->desc().c_str());
  std::vector<float> v((size_t)t->numel());
  check_io(this, t, DType::f32, v.size(), "get_f32");
  be_->copy_out(v.data(), t->data, v.size() * sizeof(float));
  return v;
}

std::vector<int32_t> Graph::get_i32(const Tensor* t) const {
  if (owns(t) && t->op != 0 && !t->has(TF_OUTPUT))
    fail("get_i32: %s is not marked as an output", t->desc().c_str());
  std::vector<int32_t> v((size_t)t->numel());
  check_io(this, t, DType::i32, v.size(), "get_i32");
  be_->copy_out(v.data(), t->data, v.size() * sizeof(int32_t));
  return v;
}

float Graph::get_scalar(const Tensor* t) const {
  std::vector<float> v = get_f32(t);
  if (v.size() != 1) fail("get_scalar: %s is not a scalar", t->desc().c_str());
  return v[0];
}

}  // namespace nsvq
