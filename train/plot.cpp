// train/plot.cpp — the SVG line and bar plot writers of train/plot.h: axis ranges and 1-2-5 / decade
// ticks, XML escaping, per-pixel-column aggregation, and the atomic file write.
#include "train/plot.h"
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include "train/atomic_file.h"

namespace nsvq {
namespace {

// Layout in pixels: margins around the plot rectangle.
constexpr double kLeft = 66, kRight = 16, kTop = 30, kBottom = 44;
constexpr size_t kEnvelopeAbove = 2000;  // series longer than this are reduced to a min/max envelope

void appendf(std::string& s, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) s.append(buf, std::min((size_t)n, sizeof buf - 1));
}

// A number for a label: %.4g, with -0 printed as 0 and the exponent shortened (1e+04 -> 1e4).
std::string num(double v) {
  if (v == 0) v = 0;
  char buf[32];
  snprintf(buf, sizeof buf, "%.4g", v);
  std::string s = buf;
  size_t e = s.find('e');
  if (e != std::string::npos) {
    size_t d = e + 1;
    if (s[d] == '+') s.erase(d, 1);
    else if (s[d] == '-') d++;
    while (d + 1 < s.size() && s[d] == '0') s.erase(d, 1);
  }
  return s;
}

// A pixel coordinate at 0.1 px, without a trailing ".0"; clamped so that far-off values stay short.
std::string px(double v) {
  v = std::max(-1e5, std::min(1e5, v));
  long t = std::lround(v * 10);
  char buf[32];
  if (t % 10 == 0)
    snprintf(buf, sizeof buf, "%ld", t / 10);
  else
    snprintf(buf, sizeof buf, "%s%ld.%ld", t < 0 ? "-" : "", std::labs(t) / 10, std::labs(t) % 10);
  return buf;
}

// Text content / attribute value: &, <, >, ", ' escaped; control characters XML 1.0 forbids dropped.
std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        if ((unsigned char)c < 0x20 && c != '\t' && c != '\n' && c != '\r') break;
        o += c;
    }
  }
  return o;
}

// Series colour i: the ten Tableau colours, then golden-angle hues.
std::string colour(size_t i) {
  static const char* pal[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                              "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  if (i < 10) return pal[i];
  double h = std::fmod(i * 137.508, 360.0) / 60.0, s = 0.65, v = 0.8;
  double c = v * s, x = c * (1 - std::fabs(std::fmod(h, 2.0) - 1)), m = v - c;
  double r = 0, g = 0, b = 0;
  switch ((int)h) {
    case 0: r = c, g = x; break;
    case 1: r = x, g = c; break;
    case 2: g = c, b = x; break;
    case 3: g = x, b = c; break;
    case 4: r = x, b = c; break;
    default: r = c, b = x; break;
  }
  char buf[8];
  snprintf(buf, sizeof buf, "#%02x%02x%02x", (int)std::lround((r + m) * 255), (int)std::lround((g + m) * 255),
           (int)std::lround((b + m) * 255));
  return buf;
}

// The 1-2-5 step whose tick count over [lo, hi] is nearest to target (ties: the larger step).
double nice_step(double lo, double hi, int target) {
  double raw = (hi - lo) / std::max(1, target);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double best = 0;
  long best_d = 0;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    double s = m * mag;
    long n = (long)(std::floor(hi / s + 1e-9) - std::ceil(lo / s - 1e-9)) + 1;
    long d = std::labs(n - target);
    if (best == 0 || d <= best_d) best = s, best_d = d;
  }
  return best;
}

std::vector<double> ticks_with_step(double lo, double hi, double s) {
  std::vector<double> t;
  for (double k = std::ceil(lo / s - 1e-9); k <= std::floor(hi / s + 1e-9); k += 1) {
    double v = k * s;
    t.push_back(std::fabs(v) < s * 1e-9 ? 0.0 : v);
  }
  return t;
}

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  // value -> fraction of the axis length
  double frac(double v) const {
    return log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
  }
};

// A linear axis over the data range [lo, hi] (empty when lo > hi): widened when degenerate and, where
// not fixed, extended to whole tick steps.
Axis linear_axis(double lo, double hi, bool fix_lo, bool fix_hi) {
  Axis a;
  if (!(lo <= hi)) lo = 0, hi = 1, fix_lo = fix_hi = false;
  if (lo == hi) {
    double d = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    if (!fix_lo) lo -= d;
    if (!fix_hi) hi += d;
    if (lo == hi) lo -= d, hi += d;
  }
  double s = nice_step(lo, hi, 5);
  if (!fix_lo) lo = std::floor(lo / s + 1e-9) * s;
  if (!fix_hi) hi = std::ceil(hi / s - 1e-9) * s;
  a.lo = lo, a.hi = hi;
  a.ticks = ticks_with_step(lo, hi, s);
  return a;
}

// A log axis over positive [lo, hi]: whole decades where not fixed, ticks every decade or every few.
Axis log_axis(double lo, double hi, bool fix_lo, bool fix_hi) {
  Axis a;
  a.log = true;
  if (!(lo > 0 && lo <= hi)) lo = 1, hi = 10, fix_lo = fix_hi = false;
  double e0 = std::floor(std::log10(lo) + 1e-9), e1 = std::ceil(std::log10(hi) - 1e-9);
  if (e1 <= e0) {
    if (!fix_hi) e1 = e0 + 1;
    else e0 = e1 - 1;
  }
  if (!fix_lo) lo = std::pow(10.0, e0);
  if (!fix_hi) hi = std::pow(10.0, e1);
  if (lo == hi) lo /= 10, hi *= 10;
  a.lo = lo, a.hi = hi;
  double ds = std::max(1.0, std::ceil((e1 - e0) / 8.0));
  for (double e = std::ceil(std::log10(lo) - 1e-9); e <= std::floor(std::log10(hi) + 1e-9); e += ds)
    a.ticks.push_back(std::pow(10.0, e));
  if (a.ticks.size() < 2) a.ticks = nice_ticks(lo, hi, 4);  // a fixed range inside one decade
  a.ticks.erase(std::remove_if(a.ticks.begin(), a.ticks.end(), [](double v) { return !(v > 0); }), a.ticks.end());
  return a;
}

struct Frame {
  int w, h;
  double pw, ph;  // plot rectangle size; it starts at (kLeft, kTop)
  Axis x, y;
  double X(double v) const { return kLeft + x.frac(v) * pw; }
  double Y(double v) const { return kTop + (1 - y.frac(v)) * ph; }
};

Frame make_frame(int width, int height) {
  Frame f;
  f.w = std::max(width, 200);
  f.h = std::max(height, 140);
  f.pw = f.w - kLeft - kRight;
  f.ph = f.h - kTop - kBottom;
  return f;
}

// Header, background, title, grid, ticks, axis labels and the clip path "c" of the plot rectangle.
void open_svg(std::string& s, const Frame& f, const std::string& title, const std::string& xl, const std::string& yl) {
  appendf(s,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n",
          f.w, f.h, f.w, f.h);
  appendf(s, "<defs><clipPath id=\"c\"><rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\"/></clipPath></defs>\n",
          px(kLeft).c_str(), px(kTop).c_str(), px(f.pw).c_str(), px(f.ph).c_str());
  appendf(s, "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", f.w, f.h);
  if (!title.empty())
    s += "<text x=\"" + px(f.w / 2.0) + "\" y=\"19\" text-anchor=\"middle\" font-size=\"14\">" + esc(title) + "</text>\n";
  double x0 = kLeft, x1 = kLeft + f.pw, y0 = kTop, y1 = kTop + f.ph;
  // grid lines
  std::string grid;
  for (double t : f.x.ticks) grid += "M" + px(f.X(t)) + " " + px(y0) + "V" + px(y1);
  for (double t : f.y.ticks) grid += "M" + px(x0) + " " + px(f.Y(t)) + "H" + px(x1);
  if (!grid.empty()) s += "<path d=\"" + grid + "\" stroke=\"#e5e5e5\" fill=\"none\"/>\n";
  s += "<rect x=\"" + px(x0) + "\" y=\"" + px(y0) + "\" width=\"" + px(f.pw) + "\" height=\"" + px(f.ph) +
       "\" fill=\"none\" stroke=\"#333\"/>\n";
  // tick labels
  s += "<g text-anchor=\"middle\">";
  for (double t : f.x.ticks) s += "<text x=\"" + px(f.X(t)) + "\" y=\"" + px(y1 + 14) + "\">" + num(t) + "</text>";
  s += "</g>\n<g text-anchor=\"end\">";
  for (double t : f.y.ticks) s += "<text x=\"" + px(x0 - 4) + "\" y=\"" + px(f.Y(t) + 4) + "\">" + num(t) + "</text>";
  s += "</g>\n";
  if (!xl.empty())
    s += "<text x=\"" + px(x0 + f.pw / 2) + "\" y=\"" + px(f.h - 8.0) + "\" text-anchor=\"middle\">" + esc(xl) + "</text>\n";
  if (!yl.empty()) {
    std::string cy = px(y0 + f.ph / 2);
    s += "<text x=\"13\" y=\"" + cy + "\" text-anchor=\"middle\" transform=\"rotate(-90 13 " + cy + ")\">" + esc(yl) +
         "</text>\n";
  }
}

bool usable(double v, bool log) { return std::isfinite(v) && (!log || v > 0); }

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (lo > hi) std::swap(lo, hi);
  if (lo == hi) return {lo};
  return ticks_with_step(lo, hi, nice_step(lo, hi, std::max(1, target)));
}

std::string svg_line_plot(const LinePlot& p, int width, int height) {
  Frame f = make_frame(width, height);
  bool lg = p.log_y;
  // data ranges
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const PlotSeries& ser : p.series) {
    size_t n = std::min(ser.x.size(), ser.y.size());
    for (size_t i = 0; i < n; i++) {
      if (!std::isfinite(ser.x[i]) || !usable(ser.y[i], lg)) continue;
      xlo = std::min(xlo, ser.x[i]), xhi = std::max(xhi, ser.x[i]);
      ylo = std::min(ylo, ser.y[i]), yhi = std::max(yhi, ser.y[i]);
    }
  }
  for (double v : p.vlines)
    if (std::isfinite(v)) xlo = std::min(xlo, v), xhi = std::max(xhi, v);
  bool fl = usable(p.y_min, lg), fh = usable(p.y_max, lg);
  if (fl) ylo = p.y_min;
  if (fh) yhi = p.y_max;
  if (fl && fh && ylo > yhi) std::swap(ylo, yhi);
  if (fl && !fh && yhi < ylo) yhi = ylo;  // one fixed bound beyond the data (or no data)
  if (fh && !fl && ylo > yhi) ylo = yhi;
  f.x = linear_axis(xlo, xhi, false, false);
  f.y = lg ? log_axis(ylo, yhi, fl, fh) : linear_axis(ylo, yhi, fl, fh);

  std::string s;
  s.reserve(16384);
  open_svg(s, f, p.title, p.xlabel, p.ylabel);

  // stage markers
  for (size_t i = 0; i < p.vlines.size(); i++) {
    double v = p.vlines[i];
    if (!std::isfinite(v)) continue;
    std::string x = px(f.X(v));
    s += "<line x1=\"" + x + "\" y1=\"" + px(kTop) + "\" x2=\"" + x + "\" y2=\"" + px(kTop + f.ph) +
         "\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n";
    if (i < p.vline_labels.size() && !p.vline_labels[i].empty())
      s += "<text x=\"" + px(f.X(v) + 3) + "\" y=\"" + px(kTop + 11) + "\" font-size=\"10\" fill=\"#555\">" +
           esc(p.vline_labels[i]) + "</text>\n";
  }

  // series
  s += "<g clip-path=\"url(#c)\" fill=\"none\" stroke-width=\"1.5\" stroke-linejoin=\"round\">\n";
  for (size_t si = 0; si < p.series.size(); si++) {
    const PlotSeries& ser = p.series[si];
    const std::string col = colour(si);
    size_t n = std::min(ser.x.size(), ser.y.size());
    size_t finite = 0;
    for (size_t i = 0; i < n; i++) finite += std::isfinite(ser.x[i]) && usable(ser.y[i], lg);
    bool envelope = finite > kEnvelopeAbove;
    std::vector<std::pair<double, double>> seg;  // pixel points of the current run of finite values
    auto flush_seg = [&]() {
      if (seg.size() == 1) {
        s += "<circle cx=\"" + px(seg[0].first) + "\" cy=\"" + px(seg[0].second) + "\" r=\"2\" fill=\"" + col +
             "\" stroke=\"none\"/>\n";
      } else if (seg.size() > 1) {
        s += "<polyline stroke=\"" + col + "\" points=\"";
        for (size_t k = 0; k < seg.size(); k++) {
          if (k) s += ' ';
          s += px(seg[k].first) + "," + px(seg[k].second);
        }
        s += "\"/>\n";
      }
      seg.clear();
    };
    // min/max envelope state: the current pixel column and the indices of its extremes
    long col_id = 0;
    size_t imin = 0, imax = 0;
    bool open = false;
    auto flush_col = [&]() {
      if (!open) return;
      size_t a = std::min(imin, imax), b = std::max(imin, imax);
      seg.push_back({f.X(ser.x[a]), f.Y(ser.y[a])});
      if (b != a) seg.push_back({f.X(ser.x[b]), f.Y(ser.y[b])});
      open = false;
    };
    for (size_t i = 0; i < n; i++) {
      double xv = ser.x[i], yv = ser.y[i];
      if (!std::isfinite(xv) || !usable(yv, lg)) {  // a gap: end the line here
        flush_col();
        flush_seg();
        continue;
      }
      if (!envelope) {
        seg.push_back({f.X(xv), f.Y(yv)});
        continue;
      }
      long c = (long)std::floor(f.X(xv));
      if (open && c == col_id) {
        if (yv < ser.y[imin]) imin = i;
        if (yv > ser.y[imax]) imax = i;
      } else {
        flush_col();
        col_id = c, imin = imax = i, open = true;
      }
    }
    flush_col();
    flush_seg();
  }
  s += "</g>\n";

  // legend (top right, inside the plot)
  if (p.series.size() > 1) {
    size_t maxlen = 0;
    std::vector<std::string> labels;
    for (size_t i = 0; i < p.series.size(); i++) {
      labels.push_back(p.series[i].label.empty() ? "#" + std::to_string(i) : p.series[i].label);
      maxlen = std::max(maxlen, labels.back().size());
    }
    double lw = 32 + 6.2 * (double)maxlen, lh = 6 + 14.0 * labels.size();
    double lx = kLeft + f.pw - lw - 6, ly = kTop + 6;
    s += "<g><rect x=\"" + px(lx) + "\" y=\"" + px(ly) + "\" width=\"" + px(lw) + "\" height=\"" + px(lh) +
         "\" fill=\"#fff\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n";
    for (size_t i = 0; i < labels.size(); i++) {
      double yy = ly + 10 + 14.0 * i;
      s += "<path d=\"M" + px(lx + 5) + " " + px(yy) + "h18\" stroke=\"" + colour(i) + "\" stroke-width=\"2\"/>";
      s += "<text x=\"" + px(lx + 27) + "\" y=\"" + px(yy + 4) + "\">" + esc(labels[i]) + "</text>\n";
    }
    s += "</g>\n";
  }
  s += "</svg>\n";
  return s;
}

std::string svg_bar_plot(const BarPlot& p, int width, int height) {
  Frame f = make_frame(width, height);
  bool lg = p.log_y;
  std::vector<double> v = p.values;
  if (p.sort_desc)  // finite values descending, the rest (skipped anyway) at the end
    std::stable_sort(v.begin(), v.end(), [](double a, double b) {
      bool fa = std::isfinite(a), fb = std::isfinite(b);
      if (fa != fb) return fa;
      return fa && a > b;
    });
  size_t n = v.size();
  double lo = INFINITY, hi = -INFINITY;
  for (double x : v)
    if (usable(x, lg)) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!lg && lo <= hi) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  f.x = linear_axis(0, (double)std::max<size_t>(n, 1), true, true);
  // log: start a decade below the smallest bar when it sits on a decade, so that no bar has zero height
  f.y = lg ? log_axis(lo * 0.5, hi, false, false) : linear_axis(lo, hi, false, false);
  // bars grow from 0 (linear) or from the bottom of the axis (log)
  double base = lg ? f.y.lo : std::max(f.y.lo, std::min(f.y.hi, 0.0));
  double ybase = f.Y(base);

  std::string s;
  s.reserve(16384);
  open_svg(s, f, p.title, p.xlabel, p.ylabel);
  const std::string col = colour(0);
  s += "<g clip-path=\"url(#c)\" shape-rendering=\"crispEdges\">\n";
  if ((double)n <= f.pw) {  // one rect per bar, with a gap when bars are wide enough
    double bw = f.pw / (double)std::max<size_t>(n, 1);
    double gap = bw >= 4 ? bw * 0.15 : 0;
    s += "<g fill=\"" + col + "\">";
    for (size_t i = 0; i < n; i++) {
      if (!usable(v[i], lg)) continue;
      double y = f.Y(v[i]), top = std::min(y, ybase), h = std::fabs(y - ybase);
      s += "<rect x=\"" + px(kLeft + i * bw + gap / 2) + "\" y=\"" + px(top) + "\" width=\"" + px(bw - gap) +
           "\" height=\"" + px(h) + "\"/>";
    }
    s += "</g>\n";
  } else {
    // More bars than pixel columns: each 1-px column draws the MAX of its bars, i.e. the bar farthest
    // from the baseline (for non-negative counts simply the largest count), so heights keep their
    // per-bar meaning whatever K is; a column whose bars are all skipped stays empty.
    int cols = (int)f.pw;
    std::string d;
    for (int c = 0; c < cols; c++) {
      size_t a = (size_t)((double)c * n / cols), b = (size_t)((double)(c + 1) * n / cols);
      b = std::min(std::max(b, a + 1), n);
      double best = NAN, far = -1;
      for (size_t i = a; i < b; i++) {
        if (!usable(v[i], lg)) continue;
        double dist = std::fabs(f.Y(v[i]) - ybase);
        if (dist > far) far = dist, best = v[i];
      }
      if (std::isnan(best)) continue;
      d += "M" + px(kLeft + c + 0.5) + " " + px(ybase) + "V" + px(f.Y(best));
    }
    if (!d.empty()) s += "<path d=\"" + d + "\" stroke=\"" + col + "\" stroke-width=\"1\" fill=\"none\"/>\n";
  }
  s += "</g>\n</svg>\n";
  return s;
}

void write_svg(const std::string& path, const std::string& svg) { write_file_atomic(path, svg.data(), svg.size()); }

}  // namespace nsvq
