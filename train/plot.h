// train/plot.h — small dependency-free SVG 1.1 plot writers (line plots of training curves, bar plots
// of per-code usage) that the trainer uses to draw its run outputs, plus the 1-2-5 tick helper.
// Non-finite values (and non-positive ones on a log axis) are skipped, never drawn; output stays small
// (coordinates at 0.1 px, numbers as %.4g, long series and many bars aggregated per pixel column).
#pragma once
#include <cmath>
#include <string>
#include <vector>

namespace nsvq {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;  // paired by index; the shorter length counts
};

struct LinePlot {
  std::string title, xlabel, ylabel;
  bool log_y = false;
  std::vector<PlotSeries> series;
  double y_min = NAN, y_max = NAN;        // optional fixed y range (NaN: from the data)
  std::vector<double> vlines;             // dashed vertical markers, e.g. stage boundaries
  std::vector<std::string> vline_labels;  // optional, one per vline
};
// A line plot: one polyline per run of finite points (a NaN breaks the line; a lone point is a dot),
// a legend when there is more than one series. A series with more than 2,000 finite points is
// downsampled to its per-pixel-column min/max envelope (both extremes kept, in index order).
std::string svg_line_plot(const LinePlot& p, int width = 720, int height = 360);

struct BarPlot {
  std::string title, xlabel, ylabel;
  std::vector<double> values;  // bar i spans [i, i+1) on the x axis
  bool log_y = false;
  bool sort_desc = false;  // sort the values in descending order first (rank plot)
};
// A bar plot. When there are more bars than plot pixel columns, each column draws the MAX of its bars
// (the one farthest from the baseline), so the y axis keeps its per-bar meaning and dead/hot codes
// stay visible; 65,536 bars give a ~15 KB file.
std::string svg_bar_plot(const BarPlot& p, int width = 720, int height = 360);

// Writes the SVG atomically (train/atomic_file.h write_file_atomic); fails via nsvq::fail on error.
void write_svg(const std::string& path, const std::string& svg);

// About `target` "nice" ticks (multiples of 1, 2 or 5 x 10^n) inside [lo, hi], ascending; the step
// is the 1-2-5 value whose tick count is nearest to target. lo == hi gives {lo}; non-finite gives {}.
std::vector<double> nice_ticks(double lo, double hi, int target);

}  // namespace nsvq
