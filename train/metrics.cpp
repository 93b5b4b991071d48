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
  // a rank-n update of the lower triangle: each row of the d x d sums is visited once per call (not
  // once per vector), rows spread over threads; per element the vectors add in order, so the result
  // does not depend on the thread count
  std::vector<double> xd((size_t)(n * d_));
  for (int64_t i = 0; i < n * d_; i++) xd[(size_t)i] = x[i];
  for (int64_t r = 0; r < n; r++)
    for (int64_t i = 0; i < d_; i++) sum_[i] += xd[(size_t)(r * d_ + i)];
#pragma omp parallel for if (d_ * d_ * n > (1 << 22)) schedule(dynamic, 16)
  for (int64_t i = 0; i < d_; i++) {
    double* row = sum_outer_.data() + i * d_;
    for (int64_t r = 0; r < n; r++) {
      const double* v = xd.data() + r * d_;
      const double vi = v[i];
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

namespace {
// Householder reduction of the symmetric a (row-major, both triangles) to tridiagonal form without
// the transform: diagonal d, e[i] couples i-1 and i. Works on whole rows of the leading block (a
// matrix-vector product and a rank-2 update per step, contiguous and threaded), so a 2,048-d
// covariance takes seconds, not the minutes of the column-walking accumulating form.
void tridiagonalize_values(std::vector<double>& a, int64_t n, std::vector<double>& d, std::vector<double>& e) {
  std::vector<double> u((size_t)n), p((size_t)n);
  for (int64_t i = n - 1; i >= 1; i--) {
    const int64_t l = i - 1;
    const double* ri = a.data() + i * n;
    d[i] = ri[i];  // later steps touch only rows and columns < i - 1
    double scale = 0;
    for (int64_t k = 0; k <= l; k++) scale += std::fabs(ri[k]);
    if (l == 0 || scale == 0.0) {
      e[i] = ri[l];
      continue;
    }
    double h = 0;
    for (int64_t k = 0; k <= l; k++) {
      u[k] = ri[k] / scale;
      h += u[k] * u[k];
    }
    const double f = u[l], g = f >= 0 ? -std::sqrt(h) : std::sqrt(h);
    e[i] = scale * g;
    h -= f * g;
    u[l] = f - g;
#pragma omp parallel for if (l > 256) schedule(static)
    for (int64_t j = 0; j <= l; j++) {
      const double* r = a.data() + j * n;
      double s = 0;
      for (int64_t k = 0; k <= l; k++) s += r[k] * u[k];
      p[j] = s / h;
    }
    double up = 0;
    for (int64_t j = 0; j <= l; j++) up += u[j] * p[j];
    const double K = up / (h + h);
    for (int64_t j = 0; j <= l; j++) p[j] -= K * u[j];
#pragma omp parallel for if (l > 256) schedule(static)
    for (int64_t j = 0; j <= l; j++) {
      double* r = a.data() + j * n;
      const double uj = u[j], qj = p[j];
      for (int64_t k = 0; k <= l; k++) r[k] -= uj * p[k] + qj * u[k];
    }
  }
  if (n > 0) d[0] = a[0];
  if (n > 0) e[0] = 0;
}
}  // namespace

void symmetric_eigen(const std::vector<double>& a_in, int64_t n, std::vector<double>& d, std::vector<double>* vectors) {
  if ((int64_t)a_in.size() != n * n) fail("symmetric_eigen: matrix has %zu values, expected %lld", a_in.size(), (long long)(n * n));
  std::vector<double> a = a_in, e((size_t)n, 0.0);
  d.assign((size_t)n, 0.0);
  auto A = [&](int64_t i, int64_t j) -> double& { return a[i * n + j]; };
  if (!vectors) tridiagonalize_values(a, n, d, e);
  // Householder reduction to tridiagonal form; a accumulates the orthogonal transform
  for (int64_t i = n - 1; vectors && i >= 1; i--) {
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
  if (vectors && n > 0) {
    d[0] = 0;
    e[0] = 0;
  }
  for (int64_t i = 0; vectors && i < n; i++) {
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
          for (int64_t k = 0; vectors && k < n; k++) {
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
// Tr((s1 s2)^{1/2}) = sum sqrt(eig(G^T s2 G)) where s1 = G G^T (pivoted Cholesky, d x r: pivots at or
// below 1e-12 of the largest diagonal are dropped, so the covariance of fewer samples than dimensions
// costs O(d^2 r)); G^T s2 G is symmetric, so only its eigenvalues are needed (no eigenvectors).
double trace_sqrt_product(const std::vector<double>& s1, const std::vector<double>& s2, int64_t d) {
  std::vector<double> a = s1, F((size_t)(d * d), 0.0), col((size_t)d);
  std::vector<int64_t> piv((size_t)d);
  std::iota(piv.begin(), piv.end(), 0);
  double maxdiag = 0;
  for (int64_t i = 0; i < d; i++) maxdiag = std::max(maxdiag, a[i * d + i]);
  int64_t r = 0;
  for (int64_t k = 0; k < d && maxdiag > 0; k++) {
    int64_t p = k;
    for (int64_t i = k + 1; i < d; i++)
      if (a[i * d + i] > a[p * d + p]) p = i;
    if (!(a[p * d + p] > 1e-12 * maxdiag)) break;
    if (p != k) {  // symmetric swap of k and p in the remaining matrix, and of the factor rows so far
      for (int64_t j = 0; j < d; j++) std::swap(a[k * d + j], a[p * d + j]);
      for (int64_t i = 0; i < d; i++) std::swap(a[i * d + k], a[i * d + p]);
      for (int64_t j = 0; j < k; j++) std::swap(F[k * d + j], F[p * d + j]);
      std::swap(piv[(size_t)k], piv[(size_t)p]);
    }
    const double lkk = std::sqrt(a[k * d + k]);
    F[k * d + k] = lkk;
    for (int64_t i = k + 1; i < d; i++) col[i] = F[i * d + k] = a[i * d + k] / lkk;
#pragma omp parallel for if (d - k > 256) schedule(static)
    for (int64_t i = k + 1; i < d; i++) {
      double* ri = a.data() + i * d;
      const double fi = col[i];
      for (int64_t j = k + 1; j < d; j++) ri[j] -= fi * col[j];
    }
    r = k + 1;
  }
  if (r == 0) return 0.0;  // s1 = 0
  std::vector<double> G((size_t)(d * r)), T((size_t)(d * r), 0.0), M((size_t)(r * r), 0.0);
  for (int64_t i = 0; i < d; i++)
    for (int64_t c = 0; c < r; c++) G[piv[(size_t)i] * r + c] = F[i * d + c];
#pragma omp parallel for if (d > 256) schedule(static)
  for (int64_t i = 0; i < d; i++) {  // T = s2 G
    double* ti = T.data() + i * r;
    for (int64_t j = 0; j < d; j++) {
      const double v = s2[i * d + j];
      const double* gj = G.data() + j * r;
      for (int64_t c = 0; c < r; c++) ti[c] += v * gj[c];
    }
  }
#pragma omp parallel for if (r > 64) schedule(static)
  for (int64_t x = 0; x < r; x++) {  // M = G^T T
    double* mx = M.data() + x * r;
    for (int64_t i = 0; i < d; i++) {
      const double g = G[i * r + x];
      const double* ti = T.data() + i * r;
      for (int64_t c = 0; c < r; c++) mx[c] += g * ti[c];
    }
  }
  for (int64_t i = 0; i < r; i++)  // symmetrise rounding noise
    for (int64_t j = 0; j < i; j++) M[i * r + j] = M[j * r + i] = 0.5 * (M[i * r + j] + M[j * r + i]);
  std::vector<double> em;
  symmetric_eigen(M, r, em, nullptr);
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

double frechet_distance(const FeatureStats& a, const FeatureStats& b, const char* what) {
  if (a.dim() != b.dim())
    fail("%s: feature dimensions differ (%lld vs %lld)", what, (long long)a.dim(), (long long)b.dim());
  if (a.count() < 2 || b.count() < 2)
    fail("%s: needs at least 2 images per set (got %lld and %lld)", what, (long long)a.count(), (long long)b.count());
  return std::max(0.0, frechet_distance(a.mean(), a.cov(), b.mean(), b.cov(), a.dim()));
}

}  // namespace nsvq
