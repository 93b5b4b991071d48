// train/metrics.cpp — utilization, perplexity, PSNR, SSIM, feature statistics, Fréchet distance and
// the symmetric eigensolver behind it (Householder tridiagonalisation + implicit-shift QL).
#include "train/metrics.h"
#include <algorithm>
#include <cmath>
#include <numeric>
#include "engine/tensor.h"

namespace nsvq {

double codebook_utilization(const std::vector<int64_t>& counts) {
  if (counts.empty()) return 0.0;
  int64_t used = 0;
  for (int64_t c : counts) used += c > 0;
  return (double)used / (double)counts.size();
}

double codebook_perplexity(const std::vector<int64_t>& counts) {
  double total = 0;
  for (int64_t c : counts) total += (double)c;
  if (total <= 0) return 0.0;
  double h = 0;
  for (int64_t c : counts)
    if (c > 0) {
      double p = (double)c / total;
      h -= p * std::log(p);
    }
  return std::exp(h);
}

uint8_t to_uint8(float x) {
  float v = std::nearbyint((x + 1.0f) * 0.5f * 255.0f);
  return (uint8_t)std::min(255.0f, std::max(0.0f, v));
}

double psnr_u8(const uint8_t* a, const uint8_t* b, int64_t n) {
  double se = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = ((double)a[i] - (double)b[i]) / 255.0;
    se += d * d;
  }
  double mse = se / (double)n;
  return mse == 0.0 ? INFINITY : 10.0 * std::log10(1.0 / mse);
}

double ssim_u8(const uint8_t* a, const uint8_t* b, int64_t C, int64_t H, int64_t W) {
  const int64_t win = 7, pad = 3;
  if (H < win || W < win) fail("ssim: images of %lldx%lld are smaller than the 7x7 window", (long long)H, (long long)W);
  const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03, np = (double)(win * win), cov_norm = np / (np - 1.0);
  double total = 0;
  // summed-area tables of x, y, x^2, y^2, xy per channel; windows centred on the uncropped pixels
  std::vector<double> sat((size_t)5 * (H + 1) * (W + 1));
  for (int64_t c = 0; c < C; c++) {
    const uint8_t* x = a + c * H * W;
    const uint8_t* y = b + c * H * W;
    std::fill(sat.begin(), sat.end(), 0.0);
    auto at = [&](int k, int64_t i, int64_t j) -> double& { return sat[((size_t)k * (H + 1) + i) * (W + 1) + j]; };
    for (int64_t i = 0; i < H; i++)
      for (int64_t j = 0; j < W; j++) {
        double xv = x[i * W + j] / 255.0, yv = y[i * W + j] / 255.0;
        double v[5] = {xv, yv, xv * xv, yv * yv, xv * yv};
        for (int k = 0; k < 5; k++) at(k, i + 1, j + 1) = v[k] + at(k, i, j + 1) + at(k, i + 1, j) - at(k, i, j);
      }
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t i = pad; i < H - pad; i++)
      for (int64_t j = pad; j < W - pad; j++) {
        double m[5];
        for (int k = 0; k < 5; k++)
          m[k] = (at(k, i + pad + 1, j + pad + 1) - at(k, i - pad, j + pad + 1) - at(k, i + pad + 1, j - pad) +
                  at(k, i - pad, j - pad)) / np;
        double vx = cov_norm * (m[2] - m[0] * m[0]), vy = cov_norm * (m[3] - m[1] * m[1]);
        double vxy = cov_norm * (m[4] - m[0] * m[1]);
        double s = ((2 * m[0] * m[1] + C1) * (2 * vxy + C2)) / ((m[0] * m[0] + m[1] * m[1] + C1) * (vx + vy + C2));
        sum += s;
        cnt++;
      }
    total += sum / (double)cnt;
  }
  return total / (double)C;
}

FeatureStats::FeatureStats(int64_t d) : d_(d), sum_((size_t)d, 0.0), sum_outer_((size_t)(d * d), 0.0) {}

void FeatureStats::add(const float* x, int64_t n) {
  for (int64_t r = 0; r < n; r++) {
    const float* v = x + r * d_;
    for (int64_t i = 0; i < d_; i++) {
      sum_[i] += v[i];
      double vi = v[i];
      double* row = sum_outer_.data() + i * d_;
      for (int64_t j = 0; j <= i; j++) row[j] += vi * v[j];
    }
  }
  n_ += n;
}

std::vector<double> FeatureStats::mean() const {
  std::vector<double> m((size_t)d_, 0.0);
  if (n_ > 0)
    for (int64_t i = 0; i < d_; i++) m[i] = sum_[i] / (double)n_;
  return m;
}

std::vector<double> FeatureStats::cov() const {
  if (n_ < 2) fail("feature statistics: need at least 2 vectors for a covariance, have %lld", (long long)n_);
  std::vector<double> m = mean(), c((size_t)(d_ * d_));
  double n = (double)n_;
  for (int64_t i = 0; i < d_; i++)
    for (int64_t j = 0; j <= i; j++) {
      double v = (sum_outer_[i * d_ + j] - n * m[i] * m[j]) / (n - 1.0);
      c[i * d_ + j] = c[j * d_ + i] = v;
    }
  return c;
}

void symmetric_eigen(const std::vector<double>& a_in, int64_t n, std::vector<double>& d, std::vector<double>* vectors) {
  if ((int64_t)a_in.size() != n * n) fail("symmetric_eigen: matrix has %zu values, expected %lld", a_in.size(), (long long)(n * n));
  std::vector<double> a = a_in, e((size_t)n, 0.0);
  d.assign((size_t)n, 0.0);
  auto A = [&](int64_t i, int64_t j) -> double& { return a[i * n + j]; };
  // Householder reduction to tridiagonal form; a accumulates the orthogonal transform
  for (int64_t i = n - 1; i >= 1; i--) {
    int64_t l = i - 1;
    double h = 0, scale = 0;
    if (l > 0) {
      for (int64_t k = 0; k <= l; k++) scale += std::fabs(A(i, k));
      if (scale == 0.0) {
        e[i] = A(i, l);
      } else {
        for (int64_t k = 0; k <= l; k++) {
          A(i, k) /= scale;
          h += A(i, k) * A(i, k);
        }
        double f = A(i, l);
        double g = f >= 0 ? -std::sqrt(h) : std::sqrt(h);
        e[i] = scale * g;
        h -= f * g;
        A(i, l) = f - g;
        f = 0;
        for (int64_t j = 0; j <= l; j++) {
          A(j, i) = A(i, j) / h;
          g = 0;
          for (int64_t k = 0; k <= j; k++) g += A(j, k) * A(i, k);
          for (int64_t k = j + 1; k <= l; k++) g += A(k, j) * A(i, k);
          e[j] = g / h;
          f += e[j] * A(i, j);
        }
        double hh = f / (h + h);
        for (int64_t j = 0; j <= l; j++) {
          f = A(i, j);
          e[j] = g = e[j] - hh * f;
          for (int64_t k = 0; k <= j; k++) A(j, k) -= (f * e[k] + g * A(i, k));
        }
      }
    } else {
      e[i] = A(i, l);
    }
    d[i] = h;
  }
  d[0] = 0;
  e[0] = 0;
  for (int64_t i = 0; i < n; i++) {
    if (d[i] != 0.0)
      for (int64_t j = 0; j < i; j++) {
        double g = 0;
        for (int64_t k = 0; k < i; k++) g += A(i, k) * A(k, j);
        for (int64_t k = 0; k < i; k++) A(k, j) -= g * A(k, i);
      }
    d[i] = A(i, i);
    A(i, i) = 1;
    for (int64_t j = 0; j < i; j++) A(j, i) = A(i, j) = 0;
  }
  // QL with implicit shifts on the tridiagonal matrix (diagonal d, off-diagonal e)
  for (int64_t i = 1; i < n; i++) e[i - 1] = e[i];
  if (n > 0) e[n - 1] = 0;
  for (int64_t l = 0; l < n; l++) {
    int iter = 0;
    int64_t m;
    do {
      for (m = l; m < n - 1; m++) {
        double dd = std::fabs(d[m]) + std::fabs(d[m + 1]);
        if (std::fabs(e[m]) <= 1e-15 * dd) break;
      }
      if (m != l) {
        if (iter++ == 100) fail("symmetric_eigen: no convergence");
        double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
        double r = std::hypot(g, 1.0);
        g = d[m] - d[l] + e[l] / (g + (g >= 0 ? std::fabs(r) : -std::fabs(r)));
        double s = 1, c = 1, p = 0;
        int64_t i;
        for (i = m - 1; i >= l; i--) {
          double f = s * e[i], b = c * e[i];
          e[i + 1] = (r = std::hypot(f, g));
          if (r == 0.0) {
            d[i + 1] -= p;
            e[m] = 0;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2.0 * c * b;
          d[i + 1] = g + (p = s * r);
          g = c * r - b;
          for (int64_t k = 0; k < n; k++) {
            f = A(k, i + 1);
            A(k, i + 1) = s * A(k, i) + c * f;
            A(k, i) = c * A(k, i) - s * f;
          }
        }
        if (r == 0.0 && i >= l) continue;
        d[l] -= p;
        e[l] = g;
        e[m] = 0;
      }
    } while (m != l);
  }
  // ascending order
  std::vector<int64_t> idx((size_t)n);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int64_t x, int64_t y) { return d[x] < d[y]; });
  std::vector<double> ds((size_t)n);
  for (int64_t k = 0; k < n; k++) ds[k] = d[idx[k]];
  d = ds;
  if (vectors) {
    vectors->assign((size_t)(n * n), 0.0);
    for (int64_t r = 0; r < n; r++)
      for (int64_t k = 0; k < n; k++) (*vectors)[r * n + k] = A(r, idx[k]);
  }
}

namespace {
// c = a * b for d x d row-major matrices
std::vector<double> matmul_d(const std::vector<double>& a, const std::vector<double>& b, int64_t d) {
  std::vector<double> c((size_t)(d * d), 0.0);
  for (int64_t i = 0; i < d; i++)
    for (int64_t k = 0; k < d; k++) {
      double v = a[i * d + k];
      const double* br = b.data() + k * d;
      double* cr = c.data() + i * d;
      for (int64_t j = 0; j < d; j++) cr[j] += v * br[j];
    }
  return c;
}

double trace_sqrt_product(const std::vector<double>& s1, const std::vector<double>& s2, int64_t d) {
  std::vector<double> ev, V;
  symmetric_eigen(s1, d, ev, &V);
  // R = V diag(sqrt(max(ev, 0))) V^T, the symmetric square root of s1
  std::vector<double> VS = V;
  for (int64_t i = 0; i < d; i++)
    for (int64_t k = 0; k < d; k++) VS[i * d + k] *= std::sqrt(std::max(ev[k], 0.0));
  std::vector<double> Vt((size_t)(d * d));
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) Vt[j * d + i] = V[i * d + j];
  std::vector<double> R = matmul_d(VS, Vt, d);
  std::vector<double> M = matmul_d(matmul_d(R, s2, d), R, d);
  for (int64_t i = 0; i < d; i++)  // symmetrise rounding noise
    for (int64_t j = 0; j < i; j++) M[i * d + j] = M[j * d + i] = 0.5 * (M[i * d + j] + M[j * d + i]);
  std::vector<double> em;
  symmetric_eigen(M, d, em, nullptr);
  double t = 0;
  for (double v : em) t += std::sqrt(std::max(v, 0.0));
  return t;
}
}  // namespace

double frechet_distance(const std::vector<double>& mu1, const std::vector<double>& s1, const std::vector<double>& mu2,
                        const std::vector<double>& s2, int64_t d) {
  if ((int64_t)mu1.size() != d || (int64_t)mu2.size() != d || (int64_t)s1.size() != d * d || (int64_t)s2.size() != d * d)
    fail("frechet_distance: statistics do not have dimension %lld", (long long)d);
  double dm = 0, tr = 0;
  for (int64_t i = 0; i < d; i++) {
    dm += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    tr += s1[i * d + i] + s2[i * d + i];
  }
  double fd = dm + tr - 2.0 * trace_sqrt_product(s1, s2, d);
  if (!std::isfinite(fd)) {
    std::vector<double> a = s1, b = s2;
    for (int64_t i = 0; i < d; i++) {
      a[i * d + i] += 1e-6;
      b[i * d + i] += 1e-6;
    }
    fd = dm + tr + 2e-6 * d - 2.0 * trace_sqrt_product(a, b, d);
  }
  return fd;
}

}  // namespace nsvq
