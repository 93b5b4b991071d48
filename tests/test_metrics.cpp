// tests/test_metrics.cpp — the metrics of method.md §7 against hand-worked values and brute force.
#include <doctest/doctest.h>
#include <cmath>
#include "engine/rng.h"
#include "train/metrics.h"

using namespace nsvq;

TEST_CASE("utilization and perplexity from code counts") {
  CHECK(codebook_utilization({3, 0, 1, 0}) == 0.5);
  CHECK(codebook_perplexity({5, 5, 5, 5}) == doctest::Approx(4.0));
  CHECK(codebook_perplexity({7, 0, 0}) == doctest::Approx(1.0));
  // p = (1/2, 1/4, 1/4): H = 1.5 ln 2, PPL = 2^1.5
  CHECK(codebook_perplexity({2, 1, 1}) == doctest::Approx(std::pow(2.0, 1.5)));
}

TEST_CASE("uint8 rounding and PSNR by hand") {
  CHECK(to_uint8(-1.0f) == 0);
  CHECK(to_uint8(1.0f) == 255);
  CHECK(to_uint8(0.0f) == 128);  // 127.5 rounds to even (128)
  CHECK(to_uint8(2.0f) == 255);
  uint8_t a[4] = {0, 10, 20, 30}, b[4] = {0, 10, 20, 40};
  // MSE = (10/255)^2 / 4 -> PSNR = 10 log10(4 * 255^2 / 100)
  CHECK(psnr_u8(a, b, 4) == doctest::Approx(10.0 * std::log10(4.0 * 255.0 * 255.0 / 100.0)));
  CHECK(std::isinf(psnr_u8(a, a, 4)));
}

TEST_CASE("SSIM: constant images by hand, identical images 1, brute force on a pattern") {
  std::vector<uint8_t> x(3 * 9 * 10, 100), y(3 * 9 * 10, 110);
  double ax = 100 / 255.0, ay = 110 / 255.0, C1 = 1e-4;
  CHECK(ssim_u8(x.data(), y.data(), 3, 9, 10) == doctest::Approx((2 * ax * ay + C1) / (ax * ax + ay * ay + C1)).epsilon(1e-12));
  Rng r(3, 1);
  std::vector<uint8_t> p(2 * 12 * 11), q(2 * 12 * 11);
  for (size_t i = 0; i < p.size(); i++) {
    p[i] = (uint8_t)r.below(256);
    q[i] = (uint8_t)std::min<uint32_t>(255, p[i] / 2 + r.below(100));
  }
  CHECK(ssim_u8(p.data(), p.data(), 2, 12, 11) == doctest::Approx(1.0).epsilon(1e-12));
  // brute force: every 7x7 window of the cropped interior, sample covariance
  double tot = 0;
  for (int c = 0; c < 2; c++) {
    double s = 0;
    int n = 0;
    for (int i = 3; i < 12 - 3; i++)
      for (int j = 3; j < 11 - 3; j++) {
        double mx = 0, my = 0;
        for (int u = -3; u <= 3; u++)
          for (int v = -3; v <= 3; v++) {
            mx += p[(c * 12 + i + u) * 11 + j + v] / 255.0 / 49;
            my += q[(c * 12 + i + u) * 11 + j + v] / 255.0 / 49;
          }
        double vx = 0, vy = 0, vxy = 0;
        for (int u = -3; u <= 3; u++)
          for (int v = -3; v <= 3; v++) {
            double a = p[(c * 12 + i + u) * 11 + j + v] / 255.0 - mx, b = q[(c * 12 + i + u) * 11 + j + v] / 255.0 - my;
            vx += a * a / 48;
            vy += b * b / 48;
            vxy += a * b / 48;
          }
        s += ((2 * mx * my + 1e-4) * (2 * vxy + 9e-4)) / ((mx * mx + my * my + 1e-4) * (vx + vy + 9e-4));
        n++;
      }
    tot += s / n;
  }
  CHECK(ssim_u8(p.data(), q.data(), 2, 12, 11) == doctest::Approx(tot / 2).epsilon(1e-9));
}

TEST_CASE("symmetric eigen-decomposition reconstructs the matrix") {
  const int64_t d = 9;
  Rng r(5, 2);
  std::vector<double> b(d * d), a(d * d, 0.0);
  for (double& v : b) v = r.normal();
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++)
      for (int64_t k = 0; k < d; k++) a[i * d + j] += b[i * d + k] * b[j * d + k];
  std::vector<double> ev, V;
  symmetric_eigen(a, d, ev, &V);
  for (int64_t k = 1; k < d; k++) CHECK(ev[k - 1] <= ev[k]);
  double err = 0;
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) {
      double s = 0;
      for (int64_t k = 0; k < d; k++) s += V[i * d + k] * ev[k] * V[j * d + k];
      err = std::max(err, std::fabs(s - a[i * d + j]));
    }
  CHECK(err < 1e-10);
}

TEST_CASE("Fréchet distance of Gaussians with known answers") {
  const int64_t d = 4;
  std::vector<double> I(d * d, 0.0), I4(d * d, 0.0);
  for (int64_t i = 0; i < d; i++) {
    I[i * d + i] = 1;
    I4[i * d + i] = 4;
  }
  std::vector<double> m0(d, 0.0), m1 = {1, 2, 0, -2};
  CHECK(frechet_distance(m0, I, m1, I, d) == doctest::Approx(9.0));
  // Tr(I + 4I - 2 * 2I) = d
  CHECK(frechet_distance(m0, I, m0, I4, d) == doctest::Approx((double)d));
  FeatureStats fs(3);
  float v[6] = {1, 2, 3, 3, 2, 1};
  fs.add(v, 2);
  std::vector<double> c = fs.cov(), m = fs.mean();
  CHECK(m[0] == 2.0);
  CHECK(c[0] == doctest::Approx(2.0));   // ((1-2)^2 + (3-2)^2) / 1
  CHECK(c[2] == doctest::Approx(-2.0));  // cov(x0, x2)
  CHECK(frechet_distance(m, c, m, c, 3) == doctest::Approx(0.0).epsilon(1e-6));
}

TEST_CASE("Fréchet distance of sampled covariances, full rank and rank-deficient, against the square-root form") {
  // reference: Tr((S1 S2)^{1/2}) = sum sqrt(eig(R S2 R)), R = S1^{1/2} from the eigenvectors
  auto reference = [](const std::vector<double>& m1, const std::vector<double>& s1, const std::vector<double>& m2,
                      const std::vector<double>& s2, int64_t d) {
    std::vector<double> ev, V, R((size_t)(d * d), 0.0), RS((size_t)(d * d), 0.0), M((size_t)(d * d), 0.0), em;
    symmetric_eigen(s1, d, ev, &V);
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++)
        for (int64_t k = 0; k < d; k++) R[i * d + j] += V[i * d + k] * std::sqrt(std::max(ev[k], 0.0)) * V[j * d + k];
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++)
        for (int64_t k = 0; k < d; k++) RS[i * d + j] += R[i * d + k] * s2[k * d + j];
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++)
        for (int64_t k = 0; k < d; k++) M[i * d + j] += RS[i * d + k] * R[k * d + j];
    symmetric_eigen(M, d, em, &V);
    double dm = 0, tr = 0, t = 0;
    for (int64_t i = 0; i < d; i++) {
      dm += (m1[i] - m2[i]) * (m1[i] - m2[i]);
      tr += s1[i * d + i] + s2[i * d + i];
      t += std::sqrt(std::max(em[i], 0.0));
    }
    return dm + tr - 2 * t;
  };
  const int64_t d = 12;
  uint64_t st = 12345;
  auto rnd = [&] {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(st >> 11) / 9007199254740992.0 - 0.5;
  };
  for (int64_t n : {40, 6}) {  // 6 samples: covariances of rank 5 in 12 dimensions
    FeatureStats a(d), b(d);
    std::vector<float> x((size_t)d);
    for (int64_t i = 0; i < n; i++) {
      for (int64_t j = 0; j < d; j++) x[(size_t)j] = (float)(rnd() + 0.3 * (double)(j % 3));
      a.add(x.data(), 1);
      for (int64_t j = 0; j < d; j++) x[(size_t)j] = (float)(1.5 * rnd() * (1 + (double)(j % 2)));
      b.add(x.data(), 1);
    }
    const double ref = reference(a.mean(), a.cov(), b.mean(), b.cov(), d);
    CHECK_MESSAGE(frechet_distance(a.mean(), a.cov(), b.mean(), b.cov(), d) == doctest::Approx(ref).epsilon(1e-7), "n = ", n);
    CHECK(frechet_distance(a, b, "fd") == doctest::Approx(ref).epsilon(1e-7));
    CHECK(frechet_distance(a, a, "fd") == doctest::Approx(0.0).epsilon(1e-9));
  }
}

