// ops/optim.cpp — the Adam/AdamW update op and random op (builders), gradient norm and clipping,
// and the AdamW driver.
#include "ops/optim.h"
#include <cmath>
#include "engine/dist.h"
#include "ops/ops_internal.h"

namespace nsvq {

Tensor* adamw_update(Graph& g, Tensor* p, Tensor* grad, Tensor* m, Tensor* v, Tensor* hp, Tensor* gscale) {
  for (Tensor* t : {p, grad, m, v}) {
    require_f32("adamw", t);
    if (t->shape() != p->shape()) fail("adamw: %s does not match parameter %s", t->desc().c_str(), p->desc().c_str());
  }
  if (!p->is_contiguous() || !m->is_contiguous() || !v->is_contiguous()) fail("adamw: %s state must be contiguous", p->desc().c_str());
  if (hp->numel() != ADAM_HP_COUNT) fail("adamw: hyperparameter tensor must have %d values", ADAM_HP_COUNT);
  std::vector<Tensor*> srcs = {p, contiguous(g, grad), m, v, hp};
  if (gscale) srcs.push_back(gscale);
  Tensor* t = make_node(g, OP_ADAMW, DType::f32, p->shape(), srcs);
  t->view_src = p;  // writes p in place: owns no storage
  t->flags |= TF_VIEW | TF_SIDE_EFFECT | TF_NO_GRAD;
  t->name = "adamw(" + p->name + ")";
  return t;
}

Tensor* global_grad_norm(Graph& g, const std::vector<Tensor*>& grads) {
  Tensor* acc = nullptr;
  for (Tensor* gr : grads) {
    Tensor* s = sum_sq(g, gr);
    acc = acc ? add(g, acc, s) : s;
  }
  if (!acc) return g.constant({}, 0.0f);
  return sqrt(g, acc);
}

Tensor* clip_coef(Graph& g, Tensor* norm, float max_norm) {
  return clamp(g, unary(g, norm, UN_RECIP, max_norm, 1e-6f), 0.0f, 1.0f);
}

Tensor* random(Graph& g, const Shape& s, int kind, Tensor* counter, int stream) {
  if (counter->dtype != DType::i32 || counter->numel() != 4) fail("random: counter must be i32 [4]");
  Tensor* t = make_node(g, OP_RANDOM, DType::f32, s, {counter});
  t->ip[0] = kind;
  t->ip[1] = stream;
  t->flags |= TF_NO_GRAD;
  return t;
}

void register_optim_ops() {
  OpDef d;
  d.name = "adamw"; op_register(OP_ADAMW, d);
  d.name = "random"; op_register(OP_RANDOM, d);
}

// ---------------------------------------------------------------- AdamW driver

AdamW::AdamW(Store& store, const std::vector<Tensor*>& params, const AdamConfig& cfg, const std::string& prefix)
    : store_(store), params_(params), default_(cfg) {
  for (Tensor* p : params_) {
    m_.push_back(store.add(prefix + ".m." + p->name, DType::f32, p->shape(), TF_PERSIST, p->group));
    v_.push_back(store.add(prefix + ".v." + p->name, DType::f32, p->shape(), TF_PERSIST, p->group));
  }
}

void AdamW::set_group_config(int group, const AdamConfig& cfg) { groups_[group] = cfg; }

const AdamConfig& AdamW::config(int group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? default_ : it->second;
}

void AdamW::set_lr_mult(const std::vector<Tensor*>& params, float mult) {
  for (Tensor* p : params) lr_mult_[p] = mult;
}

void AdamW::set_lr(int group, float lr) {
  AdamConfig c = config(group);
  c.lr = lr;
  groups_[group] = c;
}

float AdamW::lr(int group) const { return config(group).lr; }

Tensor* AdamW::append_update(Graph& g) {
  std::vector<Tensor*> grads;
  std::vector<size_t> which;
  for (size_t i = 0; i < params_.size(); i++) {
    Tensor* gr = params_[i]->has(TF_FROZEN) ? nullptr : g.grad(params_[i]);
    if (gr) {
      grads.push_back(gr);
      which.push_back(i);
    }
  }
  if (average_over_ranks && dist().size() > 1) grads = allreduce(g, grads, 1.0f / (float)dist().size());
  Tensor* norm = global_grad_norm(g, grads);
  g.mark_output(norm);
  // norm - norm is 0, or NaN when the norm is not finite: the update kernels then skip the step
  Tensor* coef = clip_norm > 0.0f ? clip_coef(g, norm, clip_norm) : g.constant({}, 1.0f);
  coef = add(g, coef, sub(g, norm, norm));
  hp_.clear();
  for (size_t k = 0; k < which.size(); k++) {
    size_t i = which[k];
    auto it = lr_mult_.find(params_[i]);
    std::pair<int, float> key(params_[i]->group, it == lr_mult_.end() ? 1.0f : it->second);
    if (!hp_.count(key)) hp_[key] = g.input(DType::f32, {ADAM_HP_COUNT}, "adam.hp." + std::to_string(key.first));
    adamw_update(g, params_[i], grads[k], m_[i], v_[i], hp_[key], coef);
  }
  return norm;
}

void AdamW::begin_step(Graph& g) {
  step_++;
  for (auto& kv : hp_) {
    const AdamConfig& c = config(kv.first.first);
    float hp[ADAM_HP_COUNT];
    hp[HP_LR] = c.lr * kv.first.second;
    hp[HP_B1] = c.beta1;
    hp[HP_B2] = c.beta2;
    hp[HP_EPS] = c.eps;
    hp[HP_WD] = c.weight_decay;
    hp[HP_BC1] = (float)(1.0 - std::pow((double)c.beta1, (double)step_));
    hp[HP_BC2] = (float)(1.0 - std::pow((double)c.beta2, (double)step_));
    hp[HP_DECOUPLED] = c.decoupled ? 1.0f : 0.0f;
    g.set_f32(kv.second, hp, ADAM_HP_COUNT);
  }
}

}  // namespace nsvq
