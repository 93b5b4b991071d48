// tests/test_plot.cpp — the SVG plot writers of train/plot.h: well-formed output, escaping, skipped
// non-finite values, size limits for many bars / long series, 1-2-5 ticks, and write_svg.
#include <doctest/doctest.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include "train/plot.h"

using namespace nsvq;

namespace {

bool starts_ends_ok(const std::string& s) {
  return s.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0 && s.size() >= 7 &&
         s.compare(s.size() - 7, 7, "</svg>\n") == 0;
}
bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }
bool has_nan_or_inf(const std::string& s) { return has(s, "nan") || has(s, "NaN") || has(s, "inf") || has(s, "Inf"); }

// true when every tick is a multiple of the (1, 2 or 5) x 10^n spacing between the first two
void check_nice(const std::vector<double>& t, double lo, double hi) {
  REQUIRE(t.size() >= 3);
  CHECK(t.size() <= 9);
  double s = t[1] - t[0];
  double m = s / std::pow(10.0, std::floor(std::log10(s) + 1e-9));
  CHECK((std::fabs(m - 1) < 1e-6 || std::fabs(m - 2) < 1e-6 || std::fabs(m - 5) < 1e-6));
  for (size_t i = 0; i < t.size(); i++) {
    CHECK(t[i] >= lo - 1e-9 * (hi - lo));
    CHECK(t[i] <= hi + 1e-9 * (hi - lo));
    CHECK(std::fabs(t[i] / s - std::round(t[i] / s)) < 1e-6);
    if (i) CHECK(t[i] - t[i - 1] == doctest::Approx(s));
  }
}

}  // namespace

TEST_CASE("plot nice_ticks gives 1-2-5 steps") {
  std::vector<double> t = nice_ticks(0, 1, 5);
  REQUIRE(t.size() == 6);
  CHECK(t[0] == 0);
  CHECK(t[1] == doctest::Approx(0.2));
  CHECK(t[5] == doctest::Approx(1.0));
  t = nice_ticks(0, 100, 5);
  REQUIRE(t.size() == 6);
  CHECK(t[1] == doctest::Approx(20));
  check_nice(nice_ticks(0.0013, 0.0087, 5), 0.0013, 0.0087);
  check_nice(nice_ticks(-3.7, 12.2, 5), -3.7, 12.2);
  check_nice(nice_ticks(-1, 1, 5), -1, 1);
  check_nice(nice_ticks(0, 65536, 5), 0, 65536);
  check_nice(nice_ticks(1e6, 1.3e6, 5), 1e6, 1.3e6);
  t = nice_ticks(1, 0, 5);  // reversed bounds are swapped
  CHECK(t.front() == 0);
  CHECK(t.back() == 1);
  t = nice_ticks(-0.3, 0.3, 5);  // zero is exactly zero, not 1e-17
  CHECK(std::find(t.begin(), t.end(), 0.0) != t.end());
  CHECK(nice_ticks(3, 3, 5) == std::vector<double>{3});
  CHECK(nice_ticks(NAN, 1, 5).empty());
  CHECK(nice_ticks(0, INFINITY, 5).empty());
}

TEST_CASE("plot line plot is standalone SVG with escaped text and a legend") {
  LinePlot p;
  p.title = "loss <train> & \"val\"";
  p.xlabel = "step";
  p.ylabel = "loss";
  p.series.push_back({"train", {0, 1, 2, 3}, {1.0, 0.5, 0.25, 0.2}});
  p.series.push_back({"a<b", {0, 3}, {0.9, 0.3}});
  p.vlines = {1.5};
  p.vline_labels = {"stage 2 & up"};
  std::string s = svg_line_plot(p);
  CHECK(starts_ends_ok(s));
  CHECK(has(s, "loss &lt;train&gt; &amp; &quot;val&quot;"));
  CHECK(!has(s, "<train>"));
  CHECK(has(s, "a&lt;b"));                // legend entry
  CHECK(has(s, "stage 2 &amp; up"));      // vline label
  CHECK(has(s, "stroke-dasharray"));      // the vline itself
  CHECK(has(s, "#1f77b4"));
  CHECK(has(s, "#ff7f0e"));  // distinct colours
  CHECK(s.size() < 20000);

  // one series: no legend
  p.series.pop_back();
  CHECK(!has(svg_line_plot(p), "a&lt;b"));
}

TEST_CASE("plot line plot skips NaN, Inf and non-positive values on a log axis") {
  LinePlot p;
  p.title = "t";
  p.log_y = true;
  p.series.push_back({"a", {0, 1, 2, 3, 4, 5}, {1.0, NAN, 0.1, -1.0, INFINITY, 0.0}});
  p.series.push_back({"b", {NAN, 1, 2}, {1.0, 2.0, 3.0}});
  std::string s = svg_line_plot(p);
  CHECK(starts_ends_ok(s));
  CHECK(!has_nan_or_inf(s));
  CHECK(has(s, ">0.1<"));  // decade ticks
  CHECK(has(s, ">10<"));
  p.log_y = false;
  s = svg_line_plot(p);
  CHECK(starts_ends_ok(s));
  CHECK(!has_nan_or_inf(s));
}

TEST_CASE("plot line plot survives degenerate inputs") {
  LinePlot p;
  CHECK(starts_ends_ok(svg_line_plot(p)));  // no series
  p.series.push_back({"empty", {}, {}});
  CHECK(starts_ends_ok(svg_line_plot(p)));
  p.series[0] = {"one", {5}, {7}};  // a single point: a dot
  std::string s = svg_line_plot(p);
  CHECK(starts_ends_ok(s));
  CHECK(has(s, "<circle"));
  p.series[0] = {"flat", {0, 1, 2}, {3, 3, 3}};  // constant values
  s = svg_line_plot(p);
  CHECK(starts_ends_ok(s));
  CHECK(has(s, "<polyline"));
  CHECK(!has_nan_or_inf(s));
  p.series[0] = {"allnan", {0, 1}, {NAN, NAN}};
  p.log_y = true;
  s = svg_line_plot(p);
  CHECK(starts_ends_ok(s));
  CHECK(!has_nan_or_inf(s));
  p.series[0] = {"fixed", {0, 1, 2}, {0.5, 2, 9}};  // fixed range clips, no crash
  p.log_y = false;
  p.y_min = 1;
  p.y_max = 4;
  s = svg_line_plot(p, 300, 200);
  CHECK(starts_ends_ok(s));
  CHECK(has(s, "clip-path"));
  CHECK(has(s, ">1<"));
  CHECK(has(s, ">4<"));
  CHECK(has(svg_line_plot(p, 10, 10), "width=\"200\""));  // tiny sizes are raised to a minimum
}

TEST_CASE("plot long series are reduced to a per-column envelope") {
  LinePlot p;
  p.title = "long";
  PlotSeries a{"noise", {}, {}};
  for (int i = 0; i < 200000; i++) {
    a.x.push_back(i);
    a.y.push_back(std::sin(i * 0.001) + ((i * 7919) % 101) * 0.001);
  }
  p.series.push_back(a);
  p.series.push_back({"short", {0, 199999}, {0, 1}});
  std::string s = svg_line_plot(p);
  CHECK(starts_ends_ok(s));
  CHECK(s.size() < 40000);
}

TEST_CASE("plot bar plot: few bars, many bars, sorting and log") {
  BarPlot b;
  b.title = "usage & <codes>";
  b.xlabel = "code";
  b.ylabel = "count";
  b.values = {3, 0, 5, NAN, 1};
  std::string s = svg_bar_plot(b);
  CHECK(starts_ends_ok(s));
  CHECK(has(s, "usage &amp; &lt;codes&gt;"));
  CHECK(!has_nan_or_inf(s));
  CHECK(has(s, "<rect x="));

  b.values.clear();
  for (int i = 0; i < 65536; i++) b.values.push_back(i % 3 == 0 ? 0.0 : (double)((i * 2654435761u) % 1000));
  b.values[17] = NAN;
  b.values[18] = INFINITY;
  for (bool lg : {false, true})
    for (bool sorted : {false, true}) {
      b.log_y = lg;
      b.sort_desc = sorted;
      s = svg_bar_plot(b);
      CHECK(starts_ends_ok(s));
      CHECK(!has_nan_or_inf(s));
      CHECK(s.size() < 200000);
    }

  b.values.assign(10, 0.0);  // constant zero, linear and log (all skipped)
  b.log_y = false;
  CHECK(starts_ends_ok(svg_bar_plot(b)));
  b.log_y = true;
  CHECK(!has_nan_or_inf(svg_bar_plot(b)));
  b.values.clear();
  CHECK(starts_ends_ok(svg_bar_plot(b)));
}

TEST_CASE("plot write_svg writes the file") {
  std::string path = "/tmp/nsvq_test_plot_" + std::to_string(::getpid()) + ".svg";
  LinePlot p;
  p.title = "file";
  p.series.push_back({"a", {0, 1}, {0, 1}});
  std::string svg = svg_line_plot(p);
  write_svg(path, svg);
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  CHECK(ss.str() == svg);
  std::remove(path.c_str());
}
