#include "nn/resample.h"

namespace sdvsr::nn {

Downsample2D::Downsample2D(const WeightScope& w, Backend& be, int64_t channels, int padding)
    : be_(&be), padding_(padding), conv_(w.sub("conv"), be, channels, channels, 3, 2, padding) {}

Tensor Downsample2D::forward(const Tensor& x) const {
  if (padding_ != 0) return conv_(x);
  // F.pad(x, (0, 1, 0, 1)): one zero column on the right, one zero row at the bottom.
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  Tensor padded = be_->concat({x, Tensor::zeros({n, c, h, 1})}, 3);
  padded = be_->concat({padded, Tensor::zeros({n, c, 1, w + 1})}, 2);
  return conv_(padded);
}

Upsample2D::Upsample2D(const WeightScope& w, Backend& be, int64_t channels)
    : be_(&be), conv_(w.sub("conv"), be, channels, channels, 3, 1, 1) {}

Tensor Upsample2D::forward(const Tensor& x, int64_t out_h, int64_t out_w) const {
  return be_->upsample_nearest_conv2d(x, out_h, out_w, conv_.stage());
}

}  // namespace sdvsr::nn
