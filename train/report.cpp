// train/report.cpp — `nsvq report`: reads finished runs and writes the comparison (train/report.h).
#include "train/report.h"
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include "engine/tensor.h"
#include "models/safetensors.h"
#include "train/atomic_file.h"
#include "train/image_io.h"
#include "train/plot.h"
#include "train/tokenizer.h"

namespace nsvq {

namespace fs = std::filesystem;

std::vector<Json> read_metrics(const std::string& path) {
  std::vector<Json> lines;
  std::ifstream in(path);
  if (!in) return lines;
  std::string l;
  int64_t n = 0;
  while (std::getline(in, l)) {
    n++;
    if (!l.empty()) lines.push_back(json_parse(l, path + " line " + std::to_string(n)));
  }
  return lines;
}

void metrics_append(const std::string& path, const std::string& json) {
  FILE* f = fopen(path.c_str(), "a");
  if (!f) fail("%s: cannot append (%s)", path.c_str(), strerror(errno));
  fprintf(f, "%s\n", json.c_str());
  if (fclose(f) != 0) fail("%s: write failed", path.c_str());
}

void metrics_truncate(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json j;
    try {
      j = json_parse(line, path);
    } catch (const Error&) {
      break;  // a line cut by a crash: drop it and the rest
    }
    const Json* s = j.find("step");
    if (!s || s->kind != Json::NUMBER || std::stoll(s->str) > step) continue;
    kept += line + "\n";
  }
  write_file_atomic(path, kept.data(), kept.size());
}

std::vector<double> series_of(const std::vector<Json>& lines, const char* group, const char* key, std::vector<double>& x) {
  std::vector<double> y;
  x.clear();
  for (const Json& j : lines) {
    const Json* o = group ? j.find(group) : &j;
    const Json* v = o ? o->find(key) : nullptr;
    const Json* s = j.find("step");
    if (!v || v->kind != Json::NUMBER || !s || s->kind != Json::NUMBER) continue;
    x.push_back(std::stod(s->str));
    y.push_back(std::stod(v->str));
  }
  return y;
}

namespace {

double num_of(const Json& j, const char* key, double dflt) {
  const Json* v = j.find(key);
  return v && v->kind == Json::NUMBER ? std::stod(v->str) : dflt;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// canonical order of the quantizers in tables and legends
int quant_rank(const std::string& q) {
  static const char* order[] = {"vq", "vq-l2", "ema", "simvq", "nsvq"};
  for (int i = 0; i < 5; i++)
    if (q == order[i]) return i;
  return 5;
}

std::string fmt(const char* f, double v) {
  char b[64];
  snprintf(b, sizeof b, f, v);
  return b;
}

std::string fmt_time(double s) {
  char b[32];
  if (s >= 3600) snprintf(b, sizeof b, "%dh%02dm", (int)(s / 3600), (int)std::fmod(s / 60, 60));
  else snprintf(b, sizeof b, "%dm%02ds", (int)(s / 60), (int)std::fmod(s, 60));
  return b;
}

// One table column: a value of a run, its format, and whether higher is better.
struct Col {
  const char* head;
  const char* f;
  bool higher;
  double (*get)(const RunSummary&);
};
const Col COLS[] = {
    {"utilization", "%.3f", true, [](const RunSummary& r) { return r.utilization; }},
    {"perplexity", "%.1f", true, [](const RunSummary& r) { return r.perplexity; }},
    {"quant. error", "%.4f", false, [](const RunSummary& r) { return r.quant_error; }},
    {"PSNR (dB)", "%.2f", true, [](const RunSummary& r) { return r.psnr; }},
    {"SSIM", "%.3f", true, [](const RunSummary& r) { return r.ssim; }},
    {"fd_proxy", "%.4g", false, [](const RunSummary& r) { return r.fd_proxy; }},
};

struct Stat {
  double mean = 0, half = 0;  // half-range over seeds
  bool ok = false;
};
Stat stat_of(const std::vector<const RunSummary*>& rs, double (*get)(const RunSummary&)) {
  Stat s;
  double lo = INFINITY, hi = -INFINITY;
  int n = 0;
  for (const RunSummary* r : rs) {
    double v = get(*r);
    if (!std::isfinite(v) || (get == COLS[5].get && v < 0)) continue;  // fd_proxy < 0: not computed
    s.mean += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    n++;
  }
  if (!n) return s;
  s.mean /= n;
  s.half = n > 1 ? (hi - lo) / 2 : 0;
  s.ok = true;
  return s;
}

// Stacks PNGs vertically (same width and channels) with a 6-pixel white gap.
bool stack_pngs(const std::vector<std::string>& paths, const std::string& out) {
  std::vector<Image> ims;
  for (const std::string& p : paths) {
    if (!fs::exists(p)) return false;
    ims.push_back(image_read(p, 3));
    if (ims.back().W != ims[0].W) return false;
  }
  if (ims.empty()) return false;
  const int64_t gap = 6, W = ims[0].W;
  int64_t H = 0;
  for (const Image& im : ims) H += im.H + (H ? gap : 0);
  Image o;
  o.C = 3;
  o.H = H;
  o.W = W;
  o.px.assign((size_t)(3 * H * W), 255);
  int64_t y0 = 0;
  for (const Image& im : ims) {
    for (int64_t c = 0; c < 3; c++)
      for (int64_t y = 0; y < im.H; y++)
        std::copy(im.px.begin() + (c * im.H + y) * W, im.px.begin() + (c * im.H + y + 1) * W,
                  o.px.begin() + (c * H + y0 + y) * W);
    y0 += im.H + gap;
  }
  image_write_png(out, o);
  return true;
}

std::string slug(const std::string& s) {
  std::string r;
  for (char c : s) r += (std::isalnum((unsigned char)c) || c == '-') ? c : '_';
  return r;
}

}  // namespace

RunSummary read_run(const std::string& dir) {
  RunSummary r;
  r.dir = dir;
  r.name = fs::path(dir).filename().string();
  if (r.name.empty()) r.name = fs::path(dir).parent_path().filename().string();
  std::string ck = dir + "/checkpoint.safetensors";
  if (!fs::exists(ck) && fs::exists(ck + ".zst")) ck += ".zst";
  if (!fs::exists(ck)) fail("%s: no checkpoint.safetensors(.zst): not a training run folder", dir.c_str());
  SafetensorsFile f = safetensors_read(ck);
  r.cfg = checkpoint_config(f);
  auto st = f.metadata.find("step");
  r.step = st == f.metadata.end() ? 0 : std::stoll(st->second);
  std::string ev = dir + "/eval.json";
  if (fs::exists(ev)) {
    Json j = json_parse(read_text(ev), ev);
    r.evaluated = true;
    r.images = (int64_t)num_of(j, "images", 0);
    r.utilization = num_of(j, "utilization", NAN);
    r.perplexity = num_of(j, "perplexity", NAN);
    r.quant_error = num_of(j, "quant_error", NAN);
    r.psnr = num_of(j, "psnr", NAN);
    r.ssim = num_of(j, "ssim", NAN);
    r.fd_proxy = num_of(j, "fd_proxy", -1);
  }
  r.metrics = read_metrics(dir + "/metrics.jsonl");
  double prev = 0;
  for (const Json& j : r.metrics) {
    double ms = num_of(j, "ms_per_step", NAN), s = num_of(j, "step", NAN);
    if (!std::isfinite(ms) || !std::isfinite(s)) continue;
    r.train_s += ms * std::max(0.0, s - prev) / 1000.0;
    prev = s;
  }
  return r;
}

std::string write_report(const std::vector<RunSummary>& runs, const std::string& out) {
  fs::create_directories(out);
  // sections: (data, model, K, steps); rows: quantizer; cells: the seeds
  using Section = std::tuple<std::string, std::string, int64_t, int64_t>;
  std::map<Section, std::map<std::string, std::vector<const RunSummary*>>> sec;
  for (const RunSummary& r : runs) {
    if (!r.evaluated) fail("%s: no eval.json (unfinished run, or trained with --eval-n 0)", r.dir.c_str());
    sec[{r.cfg.data, r.cfg.model, r.cfg.codes, r.cfg.steps}][r.cfg.quantizer].push_back(&r);
  }
  std::ostringstream md;
  md << "<!-- written by nsvq report -->\n";
  // utilization / PSNR against K per (data, model, steps), one line per quantizer
  std::map<std::tuple<std::string, std::string, int64_t>, std::map<std::string, std::vector<std::pair<double, Stat>>>> vsk_u,
      vsk_p;
  for (auto& [key, rows] : sec) {
    const auto& [data, model, K, steps] = key;
    std::vector<std::pair<std::string, std::vector<const RunSummary*>>> ordered(rows.begin(), rows.end());
    std::sort(ordered.begin(), ordered.end(),
              [](const auto& a, const auto& b) { return quant_rank(a.first) < quant_rank(b.first); });
    const RunSummary& r0 = *ordered[0].second[0];
    md << "\n### " << data << " (" << model << " autoencoder), K = " << K << ", " << steps << " steps\n\n";
    md << "Test set: " << r0.images << " images. Seeds per row in the `seeds` column; with several seeds a cell is "
       << "mean ± half the range.\n\n";
    md << "| quantizer | seeds |";
    for (const Col& c : COLS) md << " " << c.head << " |";
    md << " train time |\n|---|---|";
    for (size_t i = 0; i < std::size(COLS); i++) md << "---|";
    md << "---|\n";
    for (auto& [q, rs] : ordered) {
      std::string seeds;
      for (const RunSummary* r : rs) seeds += (seeds.empty() ? "" : ",") + std::to_string(r->cfg.seed);
      md << "| " << q << " | " << seeds << " |";
      for (const Col& c : COLS) {
        Stat s = stat_of(rs, c.get);
        md << " " << (s.ok ? fmt(c.f, s.mean) + (rs.size() > 1 ? " ± " + fmt(c.f, s.half) : "") : "—") << " |";
      }
      Stat t = stat_of(rs, [](const RunSummary& r) { return r.train_s; });
      md << " " << fmt_time(t.mean) << " |\n";
      vsk_u[{data, model, steps}][q].push_back({(double)K, stat_of(rs, COLS[0].get)});
      vsk_p[{data, model, steps}][q].push_back({(double)K, stat_of(rs, COLS[3].get)});
    }
    // the winner of each column, its margin over the runner-up, and whether the seeds separate them
    md << "\n";
    for (const Col& c : COLS) {
      std::vector<std::pair<Stat, std::string>> v;
      for (auto& [q, rs] : ordered) {
        Stat s = stat_of(rs, c.get);
        if (s.ok) v.push_back({s, q});
      }
      if (v.size() < 2) continue;
      std::sort(v.begin(), v.end(), [&](const auto& a, const auto& b) {
        return c.higher ? a.first.mean > b.first.mean : a.first.mean < b.first.mean;
      });
      double gap = std::fabs(v[0].first.mean - v[1].first.mean);
      bool multi = ordered[0].second.size() > 1;
      md << "- " << c.head << ": **" << v[0].second << "** " << fmt(c.f, v[0].first.mean) << ", "
         << (c.higher ? "+" : "-") << fmt(c.f, gap) << " over " << v[1].second << " (" << fmt(c.f, v[1].first.mean) << ")";
      if (multi) md << (gap <= v[0].first.half + v[1].first.half ? " — within the seed spread" : " — beyond the seed spread");
      else md << " — one seed";
      md << "\n";
    }
    // plots and the reconstruction grid of this section (first seed of each quantizer)
    std::string tag = slug(data) + "_K" + std::to_string(K) + "_" + std::to_string(steps);
    LinePlot pu, pr;
    pu.title = "training-window codebook utilization, " + data + ", K=" + std::to_string(K);
    pu.xlabel = pr.xlabel = "step";
    pu.ylabel = "fraction of codes used";
    pu.y_min = 0;
    pu.y_max = 1;
    pr.title = "L1 reconstruction loss, " + data + ", K=" + std::to_string(K);
    pr.ylabel = "L1";
    pr.log_y = true;
    std::vector<std::string> pngs;
    std::string order;
    for (auto& [q, rs] : ordered) {
      PlotSeries a, b;
      a.label = b.label = q;
      a.y = series_of(rs[0]->metrics, nullptr, "util_window", a.x);
      b.y = series_of(rs[0]->metrics, nullptr, "rec", b.x);
      pu.series.push_back(a);
      pr.series.push_back(b);
      pngs.push_back(rs[0]->dir + "/recon.png");
      order += (order.empty() ? "" : ", ") + q;
    }
    write_svg(out + "/util_" + tag + ".svg", svg_line_plot(pu));
    write_svg(out + "/rec_" + tag + ".svg", svg_line_plot(pr));
    md << "\n![utilization](util_" << tag << ".svg)\n![L1](rec_" << tag << ".svg)\n";
    if (stack_pngs(pngs, out + "/recon_" + tag + ".png"))
      md << "\nReconstructions of the first test images, top to bottom: " << order << ".\n\n![reconstructions](recon_"
         << tag << ".png)\n";
  }
  for (auto* which : {&vsk_u, &vsk_p}) {
    for (auto& [key, qs] : *which) {
      const auto& [data, model, steps] = key;
      bool util = which == &vsk_u;
      LinePlot p;
      p.title = std::string(util ? "test-set codebook utilization" : "PSNR") + " against codebook size, " + data + ", " +
                std::to_string(steps) + " steps";
      p.xlabel = "log2 K";
      p.ylabel = util ? "fraction of codes used" : "PSNR (dB)";
      std::vector<std::pair<std::string, PlotSeries>> ser;
      for (auto& [q, pts] : qs) {
        PlotSeries s;
        s.label = q;
        for (auto& [K, st] : pts)
          if (st.ok) {
            s.x.push_back(std::log2(K));
            s.y.push_back(st.mean);
          }
        ser.push_back({q, s});
      }
      std::sort(ser.begin(), ser.end(), [](const auto& a, const auto& b) { return quant_rank(a.first) < quant_rank(b.first); });
      for (auto& s : ser) p.series.push_back(s.second);
      if (p.series.empty() || p.series[0].x.size() < 2) continue;
      std::string file = std::string(util ? "util_vs_K_" : "psnr_vs_K_") + slug(data) + "_" + std::to_string(steps) + ".svg";
      write_svg(out + "/" + file, svg_line_plot(p));
      md << "\n![" << (util ? "utilization" : "PSNR") << " against K](" << file << ")\n";
    }
  }
  std::string text = md.str();
  write_file_atomic(out + "/report.md", text.data(), text.size());
  return text;
}

}  // namespace nsvq
