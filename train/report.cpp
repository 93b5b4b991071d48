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
  std::vector<double> steps, dr = series_of(r.metrics, "probe", "drift", steps);
  dr.erase(std::remove_if(dr.begin(), dr.end(), [](double v) { return !(v > 0); }), dr.end());  // 0: frozen
  if (!dr.empty()) {
    std::sort(dr.begin(), dr.end());
    r.drift = dr.size() % 2 ? dr[dr.size() / 2] : (dr[dr.size() / 2 - 1] + dr[dr.size() / 2]) / 2;
  }
  double prev = 0;
  for (const Json& j : r.metrics) {
    double ms = num_of(j, "ms_per_step", NAN), s = num_of(j, "step", NAN);
    if (!std::isfinite(ms) || !std::isfinite(s)) continue;
    r.train_s += ms * std::max(0.0, s - prev) / 1000.0;
    prev = s;
  }
  return r;
}

namespace {

// The options of train_fields() that may differ between the seeds of one row without changing the
// experiment (logging and checkpoint cadence).
bool bookkeeping_field(const std::string& n) {
  return n == "seed" || n == "log-every" || n == "drift-every" || n == "ckpt-every" || n == "zstd" || n == "eval-batch";
}

// One row of a table: a quantizer and the values of the --by options; its runs are the seeds.
struct Row {
  std::string q, label;  // label: "nsvq" or "nsvq encoder-lr-mult=2"
  std::vector<std::string> vals;
  size_t first = 0;  // index of its first run on the command line
  std::vector<const RunSummary*> rs;
};

// Orders rows by quantizer, then by the --by value (numerically for numbers) when there is one, by
// the command line when there are several (an ablation lists its steps in order).
bool row_less(const Row& a, const Row& b) {
  if (quant_rank(a.q) != quant_rank(b.q)) return quant_rank(a.q) < quant_rank(b.q);
  if (a.q != b.q) return a.q < b.q;
  if (a.vals.size() > 1) return a.first < b.first;
  for (size_t i = 0; i < a.vals.size(); i++) {
    if (a.vals[i] == b.vals[i]) continue;
    char *ea = nullptr, *eb = nullptr;
    double x = strtod(a.vals[i].c_str(), &ea), y = strtod(b.vals[i].c_str(), &eb);
    if (!*ea && !*eb) return x < y;
    return a.vals[i] < b.vals[i];
  }
  return false;
}

// A per-step series of every row (first seed) in one plot, or one plot per quantizer when there are
// more rows than a legend can tell apart. Returns the markdown image lines.
std::string step_plots(const std::vector<Row>& rows, bool by, const std::string& out, const std::string& tag,
                       const std::string& what, const char* group, const char* key, const std::string& title,
                       const std::string& ylabel, bool log_y, double y_min, double y_max) {
  std::map<std::string, std::vector<const Row*>> per_q;
  for (const Row& r : rows) per_q[r.q].push_back(&r);
  bool split = by && rows.size() > 6 && per_q.size() > 1;
  std::vector<std::pair<std::string, std::vector<const Row*>>> plots;
  if (split) {
    for (const Row& r : rows)
      if (plots.empty() || plots.back().first != r.q) plots.push_back({r.q, per_q[r.q]});
  } else {
    std::vector<const Row*> all;
    for (const Row& r : rows) all.push_back(&r);
    plots.push_back({"", all});
  }
  std::string md;
  for (auto& [q, rs] : plots) {
    LinePlot p;
    p.title = title + (q.empty() ? "" : ", " + q);
    p.xlabel = "step";
    p.ylabel = ylabel;
    p.log_y = log_y;
    p.y_min = y_min;
    p.y_max = y_max;
    bool any = false;
    for (const Row* r : rs) {
      PlotSeries s;
      s.label = q.empty() ? r->label : r->label.substr(r->q.size() + 1);
      std::vector<double> x, y = series_of(r->rs[0]->metrics, group, key, x);
      for (size_t i = 0; i < y.size(); i++)
        if (!log_y || y[i] > 0) {  // a drift of 0 (first probe, frozen encoder) has no place on a log axis
          s.x.push_back(x[i]);
          s.y.push_back(y[i]);
        }
      any |= !s.y.empty();
      p.series.push_back(s);
    }
    if (!any) continue;
    std::string file = what + "_" + tag + (q.empty() ? "" : "_" + slug(q)) + ".svg";
    write_svg(out + "/" + file, svg_line_plot(p));
    md += "![" + what + (q.empty() ? "" : " " + q) + "](" + file + ")\n";
  }
  return md;
}

}  // namespace

std::string write_report(const std::vector<RunSummary>& runs, const std::string& out, const std::vector<std::string>& by) {
  std::vector<const TrainField*> byf;
  for (const std::string& n : by) {
    const TrainField* f = nullptr;
    for (const TrainField& t : train_fields())
      if (t.name == n) f = &t;
    if (!f) fail("--by %s: no such training option (nsvq train --help lists them)", n.c_str());
    if (f->name == "quantizer" || f->name == "codes" || f->name == "steps" || f->name == "data" || f->name == "model" ||
        f->name == "seed")
      fail("--by %s: already told apart (rows are quantizers, tables are data/model/K/steps, seeds are averaged)",
           n.c_str());
    byf.push_back(f);
  }
  fs::create_directories(out);
  // sections: (data, model, K, steps); rows: quantizer and the --by values; cells: the seeds
  using Section = std::tuple<std::string, std::string, int64_t, int64_t>;
  std::map<Section, std::map<std::string, Row>> sec;
  for (const RunSummary& r : runs) {
    if (!r.evaluated) fail("%s: no eval.json (unfinished run, or trained with --eval-n 0)", r.dir.c_str());
    Row key;
    key.q = key.label = r.cfg.quantizer;
    key.first = (size_t)(&r - runs.data());
    for (size_t i = 0; i < byf.size(); i++) {
      // an option of another quantizer ("nsvq: ..." in its help) does not apply: shown as —
      const std::string& h = byf[i]->help;
      size_t colon = h.find(": ");
      bool other = colon != std::string::npos && colon < 8 && h.compare(0, colon, r.cfg.quantizer) != 0;
      key.vals.push_back(other ? "—" : byf[i]->get(r.cfg));
      key.label += (i ? ", " : " ") + byf[i]->name + "=" + key.vals.back();
    }
    Row& row = sec[{r.cfg.data, r.cfg.model, r.cfg.codes, r.cfg.steps}].try_emplace(key.label, key).first->second;
    // the seeds of a row must be the same experiment: anything else would be averaged silently
    if (!row.rs.empty()) {
      const RunSummary& a = *row.rs[0];
      for (const TrainField& t : train_fields()) {
        if (bookkeeping_field(t.name) || t.get(a.cfg) == t.get(r.cfg)) continue;
        fail("%s and %s differ in --%s (%s vs %s): pass --by %s to compare them, or report them apart",
             a.dir.c_str(), r.dir.c_str(), t.name.c_str(), t.get(a.cfg).c_str(), t.get(r.cfg).c_str(), t.name.c_str());
      }
      for (const RunSummary* o : row.rs)
        if (o->cfg.seed == r.cfg.seed) fail("%s and %s are the same run (seed %lld)", o->dir.c_str(), r.dir.c_str(),
                                           (long long)r.cfg.seed);
    }
    row.rs.push_back(&r);
  }
  std::ostringstream md;
  md << "<!-- written by nsvq report -->\n";
  // utilization / PSNR against K per (data, model, steps), one line per row label
  using Pts = std::vector<std::pair<double, Stat>>;
  std::map<std::tuple<std::string, std::string, int64_t>, std::map<std::string, std::pair<Row, Pts>>> vsk_u, vsk_p;
  for (auto& [key, rowmap] : sec) {
    const auto& [data, model, K, steps] = key;
    std::vector<Row> ordered;
    for (auto& kv : rowmap) ordered.push_back(kv.second);
    std::sort(ordered.begin(), ordered.end(), row_less);
    const RunSummary& r0 = *ordered[0].rs[0];
    md << "\n### " << data << " (" << model << " autoencoder), K = " << K << ", " << steps << " steps\n\n";
    md << "Test set: " << r0.images << " images. Seeds per row in the `seeds` column; with several seeds a cell is "
       << "mean ± half the range.";
    if (!byf.empty())
      md << " drift: the median over the probes of the relative change of the probe images' latents between two "
            "probes (|z_t - z_prev|^2 / |z_prev|^2), while the encoder trains.";
    md << "\n\n";
    md << "| quantizer |";
    for (const TrainField* f : byf) md << " " << f->name << " |";
    md << " seeds |";
    for (const Col& c : COLS) md << " " << c.head << " |";
    if (!byf.empty()) md << " drift |";  // a sweep's table: the encoder's drift too
    md << " train time |\n|---|";
    for (size_t i = 0; i < byf.size() + std::size(COLS) + 2 + !byf.empty(); i++) md << "---|";
    md << "\n";
    for (Row& row : ordered) {
      std::sort(row.rs.begin(), row.rs.end(), [](const RunSummary* a, const RunSummary* b) { return a->cfg.seed < b->cfg.seed; });
      std::string seeds;
      for (const RunSummary* r : row.rs) seeds += (seeds.empty() ? "" : ",") + std::to_string(r->cfg.seed);
      md << "| " << row.q << " |";
      for (const std::string& v : row.vals) md << " " << v << " |";
      md << " " << seeds << " |";
      for (const Col& c : COLS) {
        Stat s = stat_of(row.rs, c.get);
        md << " " << (s.ok ? fmt(c.f, s.mean) + (row.rs.size() > 1 ? " ± " + fmt(c.f, s.half) : "") : "—") << " |";
      }
      if (!byf.empty()) {
        Stat d = stat_of(row.rs, [](const RunSummary& r) { return r.drift; });
        md << " " << (d.ok ? fmt("%.4f", d.mean) + (row.rs.size() > 1 ? " ± " + fmt("%.4f", d.half) : "") : "—") << " |";
      }
      Stat t = stat_of(row.rs, [](const RunSummary& r) { return r.train_s; });
      md << " " << fmt_time(t.mean) << " |\n";
      for (auto [m, col] : {std::pair{&vsk_u, 0}, std::pair{&vsk_p, 3}}) {
        auto& e = (*m)[{data, model, steps}].try_emplace(row.label, std::pair<Row, Pts>{row, {}}).first->second;
        e.second.push_back({(double)K, stat_of(row.rs, COLS[col].get)});
      }
    }
    // the winner of each column, its margin over the runner-up, and whether the seeds separate them
    md << "\n";
    for (const Col& c : COLS) {
      std::vector<std::pair<Stat, const Row*>> v;
      for (const Row& row : ordered) {
        Stat s = stat_of(row.rs, c.get);
        if (s.ok) v.push_back({s, &row});
      }
      if (v.size() < 2) continue;
      std::sort(v.begin(), v.end(), [&](const auto& a, const auto& b) {
        return c.higher ? a.first.mean > b.first.mean : a.first.mean < b.first.mean;
      });
      double gap = std::fabs(v[0].first.mean - v[1].first.mean);
      bool multi = v[0].second->rs.size() > 1 && v[1].second->rs.size() > 1;
      md << "- " << c.head << ": **" << v[0].second->label << "** " << fmt(c.f, v[0].first.mean) << ", "
         << (c.higher ? "+" : "-") << fmt(c.f, gap) << " over " << v[1].second->label << " ("
         << fmt(c.f, v[1].first.mean) << ")";
      if (multi) md << (gap <= v[0].first.half + v[1].first.half ? " — within the seed spread" : " — beyond the seed spread");
      else md << " — one seed";
      md << "\n";
    }
    // plots and the reconstruction grid of this section (first seed of each row)
    std::string tag = slug(data) + "_K" + std::to_string(K) + "_" + std::to_string(steps);
    std::string ks = ", " + data + ", K=" + std::to_string(K);
    md << "\n";
    md << step_plots(ordered, !byf.empty(), out, tag, "util", nullptr, "util_window", "training-window codebook utilization" + ks,
                     "fraction of codes used", false, 0, 1);
    md << step_plots(ordered, !byf.empty(), out, tag, "rec", nullptr, "rec", "L1 reconstruction loss" + ks, "L1", true, NAN, NAN);
    if (!byf.empty())
      md << step_plots(ordered, true, out, tag, "drift", "probe", "drift", "encoder latent drift on the probe set" + ks,
                       "relative drift per probe interval", true, NAN, NAN);
    // each metric against a single numeric --by option, one line per quantizer
    if (byf.size() == 1 && byf[0]->type != 's' && byf[0]->type != 'b') {
      double lo = INFINITY, hi = -INFINITY;
      for (const Row& row : ordered) {
        if (row.vals[0] == "—") continue;
        double v = std::stod(row.vals[0]);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      bool lg = lo > 0 && hi / lo >= 8;
      for (int col : {0, 3, 5}) {
        LinePlot p;
        p.title = std::string(COLS[col].head) + " against " + byf[0]->name + ks + ", " + std::to_string(steps) + " steps";
        p.xlabel = (lg ? "log2 " : "") + byf[0]->name;
        p.ylabel = COLS[col].head;
        std::map<std::string, PlotSeries> ser;
        std::vector<std::string> qorder;
        for (const Row& row : ordered) {
          Stat s = stat_of(row.rs, COLS[col].get);
          if (!s.ok || row.vals[0] == "—") continue;
          if (!ser.count(row.q)) qorder.push_back(row.q);
          PlotSeries& ps = ser[row.q];
          ps.label = row.q;
          double v = std::stod(row.vals[0]);
          ps.x.push_back(lg ? std::log2(v) : v);
          ps.y.push_back(s.mean);
        }
        size_t most = 0;
        for (const std::string& q : qorder) {
          p.series.push_back(ser[q]);
          most = std::max(most, ser[q].x.size());
        }
        if (most < 2) continue;
        std::string file = slug(std::string(col == 0 ? "util" : col == 3 ? "psnr" : "fd") + "_vs_" + byf[0]->name) + "_" + tag + ".svg";
        write_svg(out + "/" + file, svg_line_plot(p));
        md << "![" << COLS[col].head << " against " << byf[0]->name << "](" << file << ")\n";
      }
    }
    // the grid: every row, or with more rows than that (a sweep of every quantizer) each quantizer's last row
    std::vector<std::string> pngs;
    std::string order;
    const bool last_only = !byf.empty() && ordered.size() > 6;
    for (size_t i = 0; i < ordered.size(); i++) {
      const Row& row = ordered[i];
      if (last_only && i + 1 < ordered.size() && ordered[i + 1].q == row.q) continue;
      pngs.push_back(row.rs[0]->dir + "/recon.png");
      order += (order.empty() ? "" : "; ") + row.label;
    }
    if (stack_pngs(pngs, out + "/recon_" + tag + ".png"))
      md << "\nReconstructions of the first test images, top to bottom: " << order << ".\n\n![reconstructions](recon_"
         << tag << ".png)\n";
  }
  for (auto* which : {&vsk_u, &vsk_p}) {
    for (auto& [key, rowpts] : *which) {
      const auto& [data, model, steps] = key;
      bool util = which == &vsk_u;
      LinePlot p;
      p.title = std::string(util ? "test-set codebook utilization" : "PSNR") + " against codebook size, " + data + ", " +
                std::to_string(steps) + " steps";
      p.xlabel = "log2 K";
      p.ylabel = util ? "fraction of codes used" : "PSNR (dB)";
      std::vector<std::pair<Row, PlotSeries>> ser;
      for (auto& [label, rp] : rowpts) {
        PlotSeries s;
        s.label = label;
        for (auto& [K, st] : rp.second)
          if (st.ok) {
            s.x.push_back(std::log2(K));
            s.y.push_back(st.mean);
          }
        ser.push_back({rp.first, s});
      }
      std::sort(ser.begin(), ser.end(), [](const auto& a, const auto& b) { return row_less(a.first, b.first); });
      size_t most = 0;
      for (auto& s : ser) {
        p.series.push_back(s.second);
        most = std::max(most, s.second.x.size());
      }
      if (most < 2) continue;
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
