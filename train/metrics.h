// train/metrics.h — evaluation metrics exactly as method.md §7 defines them: codebook utilization
// and perplexity from code counts, PSNR and SSIM on uint8-rounded images (scikit-image defaults),
// and the Fréchet distance between two feature sets (double precision, symmetric eigensolver).
// Images are float [C, H, W] in [-1, 1] unless stated otherwise.
#pragma once
#include <cstdint>
#include <vector>

namespace nsvq {

// U = |{k : n_k > 0}| / K
double codebook_utilization(const std::vector<int64_t>& counts);
// exp(-sum p_k ln p_k), p_k = n_k / sum n (zero counts contribute 0); 0 when there are no counts
double codebook_perplexity(const std::vector<int64_t>& counts);

// [-1, 1] -> round((x + 1) / 2 * 255) clamped to 0..255
uint8_t to_uint8(float x);
// PSNR of one image pair: 10 log10(1 / MSE) on uint8-rounded values / 255 (inf when identical)
double psnr_u8(const uint8_t* a, const uint8_t* b, int64_t n);
// SSIM of one image pair given as uint8 [C, H, W]: skimage structural_similarity(data_range=1,
// channel_axis) defaults — 7x7 uniform window, K1 0.01, K2 0.03, sample covariance, mean of the
// map with the (win-1)/2 border cropped, averaged over channels. Needs H, W >= 7.
double ssim_u8(const uint8_t* a, const uint8_t* b, int64_t C, int64_t H, int64_t W);

// Running mean and (unbiased) covariance of feature vectors of dimension d, accumulated in double.
class FeatureStats {
 public:
  explicit FeatureStats(int64_t d);
  void add(const float* x, int64_t n);  // n vectors of d values
  int64_t count() const { return n_; }
  int64_t dim() const { return d_; }
  std::vector<double> mean() const;
  std::vector<double> cov() const;  // d x d, divided by n - 1
 private:
  int64_t d_, n_ = 0;
  std::vector<double> sum_, sum_outer_;
};

// ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}); the trace of the square root is computed as
// sum sqrt(eig(G^T S2 G)) with S1 = G G^T (pivoted Cholesky; directions of S1 below 1e-12 of its largest
// variance dropped) and negative rounding residues clamped to 0 — the eigenvalues of S1 S2 without a
// matrix square root, seconds at d = 2,048. If the result is not finite, 1e-6 I is added to both
// covariances and it is computed again.
double frechet_distance(const std::vector<double>& mu1, const std::vector<double>& s1, const std::vector<double>& mu2,
                        const std::vector<double>& s2, int64_t d);
// The same between two accumulated feature sets (same dimension, at least 2 vectors each); what names
// the metric in errors. Rounding can leave -1e-11 for identical sets: the result is clamped at 0.
double frechet_distance(const FeatureStats& a, const FeatureStats& b, const char* what);

// Eigen-decomposition of a symmetric d x d matrix (row-major, double): eigenvalues ascending;
// vectors (optional) as columns of a row-major d x d matrix. Householder tridiagonalisation + QL.
void symmetric_eigen(const std::vector<double>& a, int64_t d, std::vector<double>& values, std::vector<double>* vectors);

}  // namespace nsvq
