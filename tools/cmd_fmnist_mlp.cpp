// tools/cmd_fmnist_mlp.cpp — `nsvq fmnist-mlp`: the engine's end-to-end check. Trains an MLP
// classifier (784 -> H -> H/2 -> 10, ReLU, cross-entropy, AdamW) on Fashion-MNIST and reports test
// accuracy; --min-accuracy turns it into a pass/fail test.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include "engine/rng.h"
#include "ops/optim.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "train/fmnist.h"

namespace nsvq {

namespace {
struct Mlp {
  std::vector<Tensor*> w, b;
};

// PyTorch nn.Linear initialisation: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
Mlp mlp_create(Store& st, const std::vector<int64_t>& dims, uint64_t seed) {
  Mlp m;
  Rng rng(seed, 7);
  for (size_t i = 0; i + 1 < dims.size(); i++) {
    float bound = 1.0f / std::sqrt((float)dims[i]);
    Tensor* w = st.add("fc" + std::to_string(i) + ".weight", DType::f32, {dims[i + 1], dims[i]});
    Tensor* b = st.add("fc" + std::to_string(i) + ".bias", DType::f32, {dims[i + 1]});
    std::vector<float> vw((size_t)w->numel()), vb((size_t)b->numel());
    for (float& v : vw) v = (2.0f * rng.uniform() - 1.0f) * bound;
    for (float& v : vb) v = (2.0f * rng.uniform() - 1.0f) * bound;
    st.upload_f32(w, vw);
    st.upload_f32(b, vb);
    m.w.push_back(w);
    m.b.push_back(b);
  }
  return m;
}

// x [B, 784] -> logits [B, 10]
Tensor* mlp_forward(Graph& g, const Mlp& m, Tensor* x) {
  Tensor* h = x;
  for (size_t i = 0; i < m.w.size(); i++) {
    h = add(g, matmul(g, h, m.w[i], false, true), m.b[i]);
    if (i + 1 < m.w.size()) h = relu(g, h);
  }
  return h;
}

void fill_batch(const FmnistSplit& d, const std::vector<int32_t>& order, int64_t start, int64_t B, std::vector<float>& x,
                std::vector<int32_t>& y) {
  int64_t P = d.images.rows * d.images.cols;
  for (int64_t i = 0; i < B; i++) {
    int64_t k = order[start + i];
    const uint8_t* src = d.images.pixels.data() + k * P;
    for (int64_t p = 0; p < P; p++) x[i * P + p] = src[p] * (2.0f / 255.0f) - 1.0f;
    y[i] = d.labels[k];
  }
}
}  // namespace

int cmd_fmnist_mlp(int argc, char** argv, int first) {
  Args a("fmnist-mlp", "Trains an MLP classifier on Fashion-MNIST with the nsvq engine and reports test accuracy.",
         {{"data-dir", "", FMNIST_DEFAULT_DIR, "folder with the *-idx?-ubyte.gz files"},
          {"epochs", "", "5", "training epochs"},
          {"batch", "", "128", "batch size"},
          {"lr", "", "0.001", "AdamW learning rate"},
          {"hidden", "", "256", "first hidden width (the second is half)"},
          {"seed", "", "0", "random seed"},
          {"device", "", "cpu", "cpu | cuda | cuda:N"},
          {"threads", "t", "0", "CPU threads (0: all cores)"},
          {"min-accuracy", "", "0", "exit 1 when the final test accuracy is below this"}},
         argc, argv, first);
  cpu_set_threads((int)a.i64("threads"));
  int64_t epochs = a.i64("epochs"), B = a.i64("batch"), H = a.i64("hidden");
  if (epochs < 1 || B < 1 || H < 2) fail("--epochs, --batch must be >= 1 and --hidden >= 2");
  uint64_t seed = (uint64_t)a.i64("seed");
  Backend* be = backend_by_name(a.str("device"));

  FmnistSplit train = fmnist_load(a.str("data-dir"), "train");
  FmnistSplit test = fmnist_load(a.str("data-dir"), "t10k");
  int64_t P = train.images.rows * train.images.cols;
  printf("fmnist-mlp: %lld train / %lld test images of %lldx%lld, device %s, %d threads\n", (long long)train.images.n,
         (long long)test.images.n, (long long)train.images.rows, (long long)train.images.cols, be->name().c_str(),
         cpu_threads());

  Store st(be);
  Mlp m = mlp_create(st, {P, H, H / 2, 10}, seed);
  AdamConfig cfg;
  cfg.lr = (float)a.f64("lr");
  AdamW opt(st, st.params(), cfg);

  Graph tg(be);
  Tensor* x = tg.input(DType::f32, {B, P}, "x");
  Tensor* y = tg.input(DType::i32, {B}, "labels");
  Tensor* loss = cross_entropy(tg, mlp_forward(tg, m, x), y);
  tg.mark_loss(loss);
  tg.backward(loss);
  opt.append_update(tg);
  tg.plan();
  printf("train graph: %s\n", tg.plan_summary().c_str());

  const int64_t EB = 500;
  Graph eg(be);
  Tensor* ex = eg.input(DType::f32, {EB, P}, "x");
  Tensor* pred = argmax(eg, mlp_forward(eg, m, ex), 1);
  eg.mark_output(pred);

  std::vector<int32_t> order(train.images.n), test_order(test.images.n);
  std::iota(order.begin(), order.end(), 0);
  std::iota(test_order.begin(), test_order.end(), 0);
  std::vector<float> xb((size_t)(B * P)), exb((size_t)(EB * P));
  std::vector<int32_t> yb((size_t)B), eyb((size_t)EB);
  Rng shuffle(seed, 1);
  double acc = 0.0;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t ep = 0; ep < epochs; ep++) {
    for (int64_t i = (int64_t)order.size() - 1; i > 0; i--) std::swap(order[i], order[shuffle.below((uint32_t)i + 1)]);
    auto te = std::chrono::steady_clock::now();
    double loss_sum = 0.0;
    int64_t steps = train.images.n / B;
    for (int64_t s = 0; s < steps; s++) {
      fill_batch(train, order, s * B, B, xb, yb);
      tg.set_f32(x, xb);
      tg.set_i32(y, yb);
      opt.begin_step(tg);
      tg.compute();
      float l = tg.get_scalar(loss);
      if (!std::isfinite(l)) fail("training diverged: loss %f at epoch %lld step %lld", l, (long long)ep, (long long)s);
      loss_sum += l;
    }
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
    int64_t correct = 0;
    for (int64_t s = 0; s + EB <= test.images.n; s += EB) {
      fill_batch(test, test_order, s, EB, exb, eyb);
      eg.set_f32(ex, exb);
      eg.compute();
      std::vector<int32_t> p = eg.get_i32(pred);
      for (int64_t i = 0; i < EB; i++) correct += p[i] == eyb[i];
    }
    acc = (double)correct / (double)(test.images.n / EB * EB);
    printf("epoch %lld/%lld  loss %.4f  test accuracy %.4f  %.1f s  %.0f img/s\n", (long long)ep + 1, (long long)epochs,
           loss_sum / steps, acc, sec, steps * B / sec);
    fflush(stdout);
  }
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("final test accuracy %.4f (%.1f s)\n", acc, total);
  double need = a.f64("min-accuracy");
  if (acc < need) {
    fprintf(stderr, "nsvq fmnist-mlp: test accuracy %.4f is below --min-accuracy %.4f\n", acc, need);
    return 1;
  }
  return 0;
}

}  // namespace nsvq
