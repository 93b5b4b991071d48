// tools/cmd_ldm.cpp — the latent-diffusion commands (train/ldm.h): `nsvq ldm-train` (the DiT on a
// frozen tokenizer's latents), `nsvq sample` (DDIM + classifier-free guidance -> PNG grid, one row
// per class) and `nsvq eval-gen` (fd_proxy and, with --fid-weights, FID of class-balanced samples
// against the test set, with and without guidance).
#include <cstdio>
#include <filesystem>
#include <memory>
#include "engine/backend.h"
#include "models/json.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "train/data.h"
#include "train/fdnet.h"
#include "train/fid_lpips.h"
#include "train/image_io.h"
#include "train/ldm.h"

namespace nsvq {

int cmd_ldm_train(int argc, char** argv, int first) {
  const LdmConfig def;  // every default comes from the config struct, through the field table
  std::vector<Opt> opts = {{"model", "m", "", "tokenizer checkpoint (nsvq train); not needed with --resume"}};
  for (const LdmField& f : ldm_fields())
    if (f.option()) opts.push_back({f.name, "", f.get(def), f.help});
  opts.insert(opts.end(),
              {{"out", "o", "", "run folder (default: a new runs/ldm[-N])"},
               {"resume", "", "", "continue the run in --out from its checkpoint up to --steps", true},
               {"stop-after", "", "-1", "stop with a checkpoint after this many steps of this invocation (-1: never)"},
               {"quiet", "q", "", "no progress output", true},
               {"preview", "", "8", "samples per class in the run's samples.png at the end (0: no preview)"},
               {"device", "", "cpu", "cpu | cuda | cuda:N"},
               NSVQ_PRECISION_OPTION,
               {"threads", "t", "0", "CPU threads (0: all cores)"}});
  Args a("ldm-train", "Trains a class-conditional DiT (DDPM, epsilon prediction) on a frozen tokenizer's latents.", opts,
         argc, argv, first);
  if (!a.positional().empty()) fail("nsvq ldm-train: unexpected argument '%s'", a.positional()[0].c_str());
  cpu_set_threads((int)a.i64("threads"));
  LdmTrainOptions o;
  o.resume = a.flag("resume");
  o.quiet = a.flag("quiet");
  o.stop_after = a.i64("stop-after");
  o.preview = a.i64("preview");
  if (o.preview < 0 || o.preview > 64) fail("nsvq ldm-train: --preview must be 0..64 samples per class");
  o.tokenizer = a.str("model");
  if (o.resume) {
    if (a.given("model")) fail("nsvq ldm-train: --resume continues the stored config; --model cannot be given with it (only --steps)");
    for (const LdmField& f : ldm_fields())
      if (f.option() && f.name != "steps" && a.given(f.name))
        fail("nsvq ldm-train: --resume continues the stored config; --%s cannot be given with it (only --steps)", f.name.c_str());
    if (!a.given("out")) fail("nsvq ldm-train: --resume needs --out DIR (the run to continue)");
  } else if (o.tokenizer.empty()) {
    fail("nsvq ldm-train: give the tokenizer checkpoint with -m CKPT");
  }
  LdmConfig c = def;
  for (const LdmField& f : ldm_fields())
    if (f.option() && a.given(f.name)) f.set(c, a.str(f.name));
  if (a.given("out")) {
    o.out = a.str("out");
  } else {
    o.out = "runs/ldm";
    for (int k = 2; std::filesystem::exists(o.out); k++) o.out = "runs/ldm-" + std::to_string(k);
  }
  return ldm_train(c, o, a.given("steps"), backend_for(a.str("device"), a.str("precision")));
}

int cmd_sample(int argc, char** argv, int first) {
  Args a("sample", "Samples images from a latent-diffusion checkpoint (DDIM, eta 0, classifier-free guidance).",
         {{"model", "m", "", "latent-diffusion checkpoint (nsvq ldm-train)"},
          {"class", "", "", "one class index"},
          {"all-classes", "", "", "every class, one row each (the default without --class)", true},
          {"n", "", "8", "samples per class"},
          {"steps", "", "25", "DDIM steps"},
          {"cfg", "", "1.5", "guidance weight (1: conditional only, no guidance)"},
          {"seed", "", "0", "seed of the starting noise"},
          {"raw-weights", "", "", "sample with the trained weights instead of their EMA", true},
          {"out", "o", "samples.png", "PNG grid"},
          {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION,
          {"threads", "t", "0", "CPU threads (0: all cores)"}},
         argc, argv, first);
  if (!a.positional().empty()) fail("nsvq sample: unexpected argument '%s'", a.positional()[0].c_str());
  if (!a.given("model")) fail("nsvq sample: give the latent-diffusion checkpoint with -m CKPT");
  if (a.given("class") && a.flag("all-classes")) fail("nsvq sample: --class and --all-classes exclude each other");
  int64_t n = a.i64("n"), steps = a.i64("steps");
  if (n < 1 || n > 4096) fail("nsvq sample: --n must be in 1..4096");
  cpu_set_threads((int)a.i64("threads"));
  LdmModel m(a.str("model"), backend_for(a.str("device"), a.str("precision")), a.flag("raw-weights"));
  std::vector<int32_t> classes;
  if (a.given("class")) {
    int64_t c = a.i64("class");
    if (c < 0 || c >= m.dit_config().num_classes)
      fail("nsvq sample: --class %lld out of range (the model has %d classes: 0..%d)", (long long)c,
           m.dit_config().num_classes, m.dit_config().num_classes - 1);
    classes.push_back((int32_t)c);
  } else {
    for (int c = 0; c < m.dit_config().num_classes; c++) classes.push_back(c);
  }
  std::vector<int32_t> labels;
  for (int32_t c : classes)
    for (int64_t k = 0; k < n; k++) labels.push_back(c);
  std::vector<float> img = m.sample(labels, steps, a.f64("cfg"), (uint64_t)a.i64("seed"));
  TokenizerModel& t = m.tokenizer();
  image_write_png(a.str("out"), image_grid(img.data(), (int64_t)labels.size(), t.channels(), t.resolution(), t.resolution(), n));
  printf("sample: %zu images (%zu class%s x %lld, DDIM %lld steps, guidance %g) -> %s\n", labels.size(), classes.size(),
         classes.size() == 1 ? "" : "es", (long long)n, (long long)steps, a.f64("cfg"), a.str("out").c_str());
  return 0;
}

int cmd_eval_gen(int argc, char** argv, int first) {
  Args a("eval-gen",
         "fd_proxy (and FID with --fid-weights) of class-balanced samples against the test set, with and without "
         "guidance.",
         {{"model", "m", "", "latent-diffusion checkpoint (nsvq ldm-train)"},
          {"fd-net", "", "", "fd-net file (nsvq fd-net train) of the same dataset"},
          {"fid-weights", "", "", "InceptionV3-FID weights (tools/convert-weights.py inception): also report fid"},
          {"data", "", "", "test images (default: the dataset the model was trained on)"},
          {"n", "", "1000", "samples (and test images): a multiple of the class count"},
          {"steps", "", "25", "DDIM steps"},
          {"cfg", "", "1.5", "guidance weight of the guided row"},
          {"seed", "", "0", "seed of the starting noise"},
          {"json", "", "", "one JSON object", true},
          {"raw-weights", "", "", "sample with the trained weights instead of their EMA", true},
          {"device", "", "cpu", "cpu | cuda | cuda:N"}, NSVQ_PRECISION_OPTION,
          {"threads", "t", "0", "CPU threads (0: all cores)"}},
         argc, argv, first);
  if (!a.positional().empty()) fail("nsvq eval-gen: unexpected argument '%s'", a.positional()[0].c_str());
  if (!a.given("model")) fail("nsvq eval-gen: give the latent-diffusion checkpoint with -m CKPT");
  if (!a.given("fd-net") && !a.given("fid-weights"))
    fail("nsvq eval-gen: give an fd-net with --fd-net FILE (nsvq fd-net train), InceptionV3-FID weights with "
         "--fid-weights FILE, or both");
  cpu_set_threads((int)a.i64("threads"));
  Backend* be = backend_for(a.str("device"), a.str("precision"));
  LdmModel m(a.str("model"), be, a.flag("raw-weights"));
  const int nc = m.dit_config().num_classes;
  int64_t n = a.i64("n");
  if (n < 2 * nc || n % nc) fail("nsvq eval-gen: --n must be a multiple of %d classes and at least %d", nc, 2 * nc);
  TokenizerModel& t = m.tokenizer();
  const int64_t C = t.channels(), R = t.resolution(), per = C * R * R, per_class = n / nc;
  std::string spec = a.given("data") ? a.str("data") : m.config().data;
  Dataset test = dataset_load(spec, "test", R, (int)C);
  if (test.C != C || test.S != R) fail("nsvq eval-gen: %s images are %lldx%lld, the model makes %lldx%lld", spec.c_str(),
                                       (long long)test.C, (long long)test.S, (long long)C, (long long)R);
  std::vector<float> real((size_t)(n * per));
  std::vector<int64_t> taken((size_t)nc, 0);
  std::vector<int32_t> real_labels;  // in test-set order (not sorted by class)
  int64_t got = 0;
  for (int64_t i = 0; i < test.size() && got < n; i++) {
    int32_t c = test.labels[(size_t)i];
    if (c < 0 || c >= nc || taken[(size_t)c] >= per_class) continue;
    dataset_sample(test, i, real.data() + got * per, false, 0);
    real_labels.push_back(c);
    taken[(size_t)c]++;
    got++;
  }
  if (got < n) fail("nsvq eval-gen: the test set of %s has fewer than %lld images of some class", spec.c_str(), (long long)per_class);
  std::vector<int32_t> labels;
  for (int c = 0; c < nc; c++)
    for (int64_t k = 0; k < per_class; k++) labels.push_back(c);
  // fd-net features (for fd_proxy) and predicted classes (class_acc: the share of images the fd-net puts
  // in the class they were drawn for, a check that samples are recognisable by class); Inception
  // features for fid
  std::unique_ptr<FdFeatures> fx;
  std::unique_ptr<FidFeatures> ix;
  if (a.given("fd-net")) fx = std::make_unique<FdFeatures>(a.str("fd-net"), be);
  if (a.given("fid-weights")) ix = std::make_unique<FidFeatures>(a.str("fid-weights"), be);
  struct Judged {
    double acc = -1, fd = -1, fid = -1;
  };
  std::unique_ptr<FeatureStats> fr, ir;
  auto judge = [&](const std::vector<float>& imgs, const std::vector<int32_t>& want) {
    Judged j;
    if (fx) {
      FeatureStats st(fx->feature_dim());
      std::vector<int32_t> cls;
      std::vector<float> f = fx->extract(imgs.data(), n, C, R, &cls);
      st.add(f.data(), n);
      int64_t hit = 0;
      for (int64_t i = 0; i < n; i++) hit += cls[(size_t)i] == want[(size_t)i];
      j.acc = (double)hit / (double)n;
      if (!fr) fr = std::make_unique<FeatureStats>(st);  // the first call: the test images
      else j.fd = fd_proxy(*fr, st);
    }
    if (ix) {
      FeatureStats st(FidFeatures::dim());
      ix->accumulate(st, imgs.data(), n, C, R);
      if (!ir) ir = std::make_unique<FeatureStats>(st);
      else j.fid = frechet_distance(*ir, st, "fid");
    }
    return j;
  };
  const Judged jr = judge(real, real_labels);
  double w = a.f64("cfg");
  const Judged jg = judge(m.sample(labels, a.i64("steps"), w, (uint64_t)a.i64("seed")), labels);
  const Judged jp = judge(m.sample(labels, a.i64("steps"), 1.0, (uint64_t)a.i64("seed")), labels);
  auto num = [](double v) { return v < 0 ? std::string("null") : json_number(v); };
  if (a.flag("json")) {
    printf("{\"samples\": %lld, \"steps\": %lld, \"cfg\": %g, \"fd_proxy_guided\": %s, \"fd_proxy_unguided\": %s, "
           "\"fid_guided\": %s, \"fid_unguided\": %s, \"class_acc_guided\": %s, \"class_acc_unguided\": %s, "
           "\"class_acc_test\": %s, \"ldm_step\": %lld, \"weights\": \"%s\"}\n",
           (long long)n, (long long)a.i64("steps"), w, num(jg.fd).c_str(), num(jp.fd).c_str(), num(jg.fid).c_str(),
           num(jp.fid).c_str(), num(jg.acc).c_str(), num(jp.acc).c_str(), num(jr.acc).c_str(), (long long)m.step(),
           a.flag("raw-weights") ? "raw" : "ema");
  } else {
    printf("eval-gen: %lld class-balanced samples vs %lld test images (DDIM %lld steps, guidance %g / none)\n",
           (long long)n, (long long)n, (long long)a.i64("steps"), w);
    if (fx)
      printf("  fd_proxy %.4g / %.4g (a proxy: only comparable with the same fd-net); fd-net class accuracy %.1f%% / "
             "%.1f%% (test images %.1f%%)\n",
             jg.fd, jp.fd, 100 * jg.acc, 100 * jp.acc, 100 * jr.acc);
    if (ix) printf("  FID %.4g / %.4g (pytorch-fid InceptionV3)\n", jg.fid, jp.fid);
  }
  return 0;
}

}  // namespace nsvq
