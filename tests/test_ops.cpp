// tests/test_ops.cpp — runs every case of the op table in three modes: (a) central finite-difference
// gradient check of each f32 input, (b) optimised CPU kernels against the plain scalar reference,
// (c) CPU against CUDA parity of outputs and gradients (skipped, saying so, without a GPU).
#include <doctest/doctest.h>
#include <cmath>
#include <cstdio>
#include "engine/rng.h"
#include "ops/conv_geom.h"
#include "tests/op_cases.h"

using namespace nsvq;
using namespace nsvq::test;

namespace {

std::vector<Host> make_inputs(const OpCase& c, uint64_t seed) {
  Rng r(seed, 99);
  std::vector<Host> in;
  for (const InputSpec& s : c.inputs) {
    Host h = s.dt == DType::f32 ? host_f32(s.s) : host_i32(s.s);
    if (s.spread) {  // a shuffled grid with jitter: no two values closer than half a step
      int64_t n = h.n();
      for (int64_t i = 0; i < n; i++) h.f[i] = s.lo + (s.hi - s.lo) * ((float)i + 0.25f + 0.5f * r.uniform()) / (float)n;
      for (int64_t i = n - 1; i > 0; i--) std::swap(h.f[i], h.f[r.below((uint32_t)i + 1)]);
      in.push_back(h);
      continue;
    }
    for (int64_t i = 0; i < h.n(); i++) {
      if (s.dt == DType::i32) {
        h.i[i] = (int32_t)s.lo + (int32_t)r.below((uint32_t)(s.hi - s.lo));
        continue;
      }
      for (;;) {
        float v = s.lo + (s.hi - s.lo) * r.uniform();
        bool bad = std::fabs(v) < 1e-3f;  // never zeros
        for (float a : s.avoid) bad |= std::fabs(v - a) < 0.05f;
        if (!bad) {
          h.f[i] = v;
          break;
        }
      }
    }
    in.push_back(h);
  }
  return in;
}

struct Run {
  Host out;
  std::vector<Host> grads;  // per input (empty Host when not differentiated)
  float loss = 0;
};

Host read_back(const Graph& g, const Tensor* t) {
  Host h;
  h.s = t->shape();
  h.dt = t->dtype;
  if (t->dtype == DType::f32) h.f = g.get_f32(t);
  else h.i = g.get_i32(t);
  return h;
}

// Builds the case on `be` from `in`; with proj, also loss = sum(out * proj) and its input gradients.
Run run_case(Backend* be, const OpCase& c, const std::vector<Host>& in, const std::vector<float>* proj, bool grads) {
  Store st(be);
  std::vector<Tensor*> xs;
  for (size_t i = 0; i < in.size(); i++) {
    bool diff = c.inputs[i].dt == DType::f32 && c.inputs[i].grad;
    Tensor* t = st.add("in" + std::to_string(i), in[i].dt, in[i].s, diff ? TF_PARAM : TF_PERSIST);
    if (in[i].dt == DType::f32) st.upload(t, in[i].f.data(), in[i].f.size() * 4);
    else st.upload(t, in[i].i.data(), in[i].i.size() * 4);
    xs.push_back(t);
  }
  Graph g(be);
  Tensor* out = contiguous(g, c.build(g, xs));
  g.mark_output(out);
  Tensor* loss = nullptr;
  std::vector<Tensor*> gts;
  if (proj) {
    loss = sum(g, mul(g, out, g.constant_data(out->shape(), *proj)));
    g.mark_loss(loss);
    if (grads) {
      std::vector<Tensor*> wrt;
      for (size_t i = 0; i < xs.size(); i++)
        if (xs[i]->has(TF_PARAM)) wrt.push_back(xs[i]);
      std::vector<Tensor*> gr = g.gradients({{loss, 1.0f}}, wrt);
      size_t k = 0;
      for (size_t i = 0; i < xs.size(); i++) {
        Tensor* gi = xs[i]->has(TF_PARAM) ? gr[k++] : nullptr;
        if (gi) {
          gi = contiguous(g, gi);
          g.mark_output(gi);
        }
        gts.push_back(gi);
      }
    }
  }
  g.compute();
  Run r;
  r.out = read_back(g, out);
  if (loss) r.loss = g.get_scalar(loss);
  for (Tensor* t : gts) r.grads.push_back(t ? read_back(g, t) : Host{});
  return r;
}

bool close(float a, float b, float tol) { return std::fabs(a - b) <= tol * std::max(1.0f, std::fabs(b)); }

// (b) optimised kernels vs reference
void check_reference(const OpCase& c, const Run& r, const std::vector<Host>& in) {
  Host ref = c.ref(in);
  REQUIRE(r.out.s == ref.s);
  REQUIRE(r.out.dt == ref.dt);
  int bad = 0;
  for (int64_t i = 0; i < ref.n() && bad < 5; i++) {
    bool ok = ref.dt == DType::i32 ? r.out.i[i] == ref.i[i] : close(r.out.f[i], ref.f[i], c.ref_tol);
    if (!ok) {
      bad++;
      if (ref.dt == DType::i32) FAIL_CHECK("element " << i << ": kernel " << r.out.i[i] << " reference " << ref.i[i]);
      else FAIL_CHECK("element " << i << ": kernel " << r.out.f[i] << " reference " << ref.f[i]);
    }
  }
}

// (a) central finite differences on up to 24 elements of each differentiated input
void check_gradients(const OpCase& c, const std::vector<Host>& in, const std::vector<float>& proj) {
  Backend* cpu = backend_cpu();
  Run r = run_case(cpu, c, in, &proj, true);
  Rng pick(7, 5);
  for (size_t k = 0; k < in.size(); k++) {
    if (c.inputs[k].dt != DType::f32 || !c.inputs[k].grad) continue;
    REQUIRE_MESSAGE(!r.grads[k].f.empty(), "no gradient reached input " << k);
    int64_t n = in[k].n();
    int checks = (int)std::min<int64_t>(n, 24);
    for (int t = 0; t < checks; t++) {
      int64_t i = n <= 24 ? t : (int64_t)pick.below((uint32_t)n);
      std::vector<Host> hp = in, hm = in;
      hp[k].f[i] += c.fd_eps;
      hm[k].f[i] -= c.fd_eps;
      double lp = run_case(cpu, c, hp, &proj, false).loss, lm = run_case(cpu, c, hm, &proj, false).loss;
      float num = (float)((lp - lm) / (2.0 * c.fd_eps));
      float ana = r.grads[k].f[i];
      bool ok = std::fabs(num - ana) <= 5e-3f + c.fd_tol * std::fabs(ana);
      if (!ok) FAIL_CHECK("input " << k << " element " << i << ": analytic " << ana << " numeric " << num);
    }
  }
}

// (c) CPU vs CUDA
void check_parity(const OpCase& c, const Run& cpu_run, const std::vector<Host>& in, const std::vector<float>* proj) {
  Run gr = run_case(backend_cuda(0), c, in, proj, proj != nullptr);
  REQUIRE(gr.out.s == cpu_run.out.s);
  const float tol = 1e-4f;  // f32; i32 must match exactly
  for (int64_t i = 0; i < cpu_run.out.n(); i++) {
    if (cpu_run.out.dt == DType::i32) CHECK(gr.out.i[i] == cpu_run.out.i[i]);
    else if (!close(gr.out.f[i], cpu_run.out.f[i], tol)) {
      FAIL_CHECK("output element " << i << ": cuda " << gr.out.f[i] << " cpu " << cpu_run.out.f[i]);
      break;
    }
  }
  for (size_t k = 0; k < cpu_run.grads.size(); k++)
    for (size_t i = 0; i < cpu_run.grads[k].f.size(); i++)
      if (!close(gr.grads[k].f[i], cpu_run.grads[k].f[i], tol)) {
        FAIL_CHECK("gradient " << k << " element " << i << ": cuda " << gr.grads[k].f[i] << " cpu " << cpu_run.grads[k].f[i]);
        break;
      }
}

}  // namespace

TEST_CASE("op table: gradient check, reference and CUDA parity for every case") {
  std::vector<OpCase> cases = op_cases();
  bool gpu = cuda_device_count() > 0;
  static bool told = false;
  if (!gpu && !told) {
    MESSAGE("no CUDA device: CPU-vs-CUDA parity of " << cases.size() << " op cases skipped");
    told = true;
  }
  int seed = 1;
  for (const OpCase& c : cases) {
    SUBCASE(c.name.c_str()) {
      std::vector<Host> in = make_inputs(c, (uint64_t)seed);
      bool has_grad = false;
      for (const InputSpec& s : c.inputs) has_grad |= s.dt == DType::f32 && s.grad;
      Run probe = run_case(backend_cpu(), c, in, nullptr, false);
      std::vector<float> proj;
      if (probe.out.dt == DType::f32) {
        Rng r(seed, 42);
        proj.resize((size_t)probe.out.n());
        for (float& v : proj) v = 2.0f * r.uniform() - 1.0f;
      }
      if (c.ref) check_reference(c, probe, in);
      if (has_grad) check_gradients(c, in, proj);
      if (gpu) {
        Run cpu_run = run_case(backend_cpu(), c, in, proj.empty() ? nullptr : &proj, has_grad);
        check_parity(c, cpu_run, in, proj.empty() ? nullptr : &proj);
      }
    }
    seed++;
  }
}

TEST_CASE("conv2d CUDA passes: tiny column budgets reach image groups and pixel chunks, results match the CPU") {
  if (cuda_device_count() == 0) {
    MESSAGE("no CUDA device: conv2d pass-plan parity skipped");
    return;
  }
  struct Restore {
    int64_t saved = conv_cuda_budget();
    ~Restore() { conv_cuda_budget() = saved; }
  } restore;
  for (int64_t budget : {int64_t(1) << 10, int64_t(5000), int64_t(40000)}) {
    conv_cuda_budget() = budget;  // 1024 and 5000: pixel chunks of one image for most cases; 40000: groups
    int seed = 1;
    for (const OpCase& c : op_cases()) {
      seed++;
      if (c.name.rfind("conv2d", 0) != 0) continue;
      SUBCASE((c.name + " budget " + std::to_string(budget)).c_str()) {
        std::vector<Host> in = make_inputs(c, (uint64_t)seed);
        Run probe = run_case(backend_cpu(), c, in, nullptr, false);
        std::vector<float> proj((size_t)probe.out.n());
        Rng r(seed, 42);
        for (float& v : proj) v = 2.0f * r.uniform() - 1.0f;
        Run cpu_run = run_case(backend_cpu(), c, in, &proj, true);
        check_parity(c, cpu_run, in, &proj);
      }
    }
  }
}
