// ops/layers.cpp — layers composed from the registered ops (their gradients, CUDA support and
// tests come with the ops they use): linear, adaLN modulation, depth/space rearrangements and the
// GAN losses.
#include "ops/ops_internal.h"

namespace nsvq {

Tensor* linear(Graph& g, Tensor* x, Tensor* w, Tensor* b) {
  if (w->ndim != 2 || x->ndim < 1 || x->ne[x->ndim - 1] != w->ne[1])
    fail("linear: input %s does not match weight %s ([out, in])", x->shape().str().c_str(), w->shape().str().c_str());
  int64_t in = w->ne[1], out = w->ne[0];
  Shape os = x->shape();
  os.ne[os.ndim - 1] = out;
  Tensor* y = matmul(g, reshape(g, x, {-1, in}), w, false, true);
  if (b) {
    if (b->ndim != 1 || b->ne[0] != out) fail("linear: bias %s must be [%lld]", b->shape().str().c_str(), (long long)out);
    y = add(g, y, b);
  }
  return reshape(g, y, os);
}

Tensor* modulate(Graph& g, Tensor* x, Tensor* shift, Tensor* scale) {
  if (x->ndim != 3 || shift->shape() != Shape{x->ne[0], x->ne[2]} || scale->shape() != shift->shape())
    fail("modulate: x %s needs shift and scale [B, D], got %s and %s", x->shape().str().c_str(),
         shift->shape().str().c_str(), scale->shape().str().c_str());
  Shape s3{x->ne[0], 1, x->ne[2]};
  return add(g, mul(g, x, reshape(g, unary(g, scale, UN_AFFINE, 1.0f, 1.0f), s3)), reshape(g, shift, s3));
}

Tensor* depth_to_space(Graph& g, Tensor* x, int r) {
  if (x->ndim != 4 || r < 1 || x->ne[1] % (r * r))
    fail("depth_to_space: input %s channels not divisible by %d", x->shape().str().c_str(), r * r);
  int64_t N = x->ne[0], C = x->ne[1] / (r * r), H = x->ne[2], W = x->ne[3];
  Tensor* t = permute(g, reshape(g, x, {N, C, r, r, H, W}), {0, 1, 4, 2, 5, 3});  // N, C, H, i, W, j
  return reshape(g, contiguous(g, t), {N, C, H * r, W * r});
}

Tensor* space_to_depth(Graph& g, Tensor* x, int r) {
  if (x->ndim != 4 || r < 1 || x->ne[2] % r || x->ne[3] % r)
    fail("space_to_depth: input %s spatial size not divisible by %d", x->shape().str().c_str(), r);
  int64_t N = x->ne[0], C = x->ne[1], H = x->ne[2] / r, W = x->ne[3] / r;
  Tensor* t = permute(g, reshape(g, x, {N, C, H, r, W, r}), {0, 1, 3, 5, 2, 4});  // N, C, i, j, H, W
  return reshape(g, contiguous(g, t), {N, C * r * r, H, W});
}

Tensor* hinge_d_loss(Graph& g, Tensor* real, Tensor* fake) {
  Tensor* lr = mean(g, relu(g, unary(g, real, UN_AFFINE, -1.0f, 1.0f)));
  Tensor* lf = mean(g, relu(g, unary(g, fake, UN_AFFINE, 1.0f, 1.0f)));
  return scale(g, add(g, lr, lf), 0.5f);
}

Tensor* hinge_g_loss(Graph& g, Tensor* fake) { return neg(g, mean(g, fake)); }

Tensor* non_saturating_g_loss(Graph& g, Tensor* fake) {
  std::vector<int> patch_axes;
  for (int d = 1; d < fake->ndim; d++) patch_axes.push_back(d);
  Tensor* per_image = patch_axes.empty() ? fake : mean(g, fake, patch_axes);
  return mean(g, softplus(g, neg(g, per_image)));
}

}  // namespace nsvq
