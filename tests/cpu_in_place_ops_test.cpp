// The CPU backend's in-place forms (activation_in_place, add_in_place,
// scale_in_place) give the ordinary op's bits, write into the given tensor
// only when nothing else refers to its storage, and never into read-only
// (borrowed or frozen) storage.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/backend.h"
#include "test_tensors.h"

namespace sdvsr {
namespace {

using test::random_tensor;
using test::SameBits;

Backend& cpu() { return cpu_backend(); }

const Activation kActivations[] = {Activation::kNone, Activation::kSiLU, Activation::kGELU,
                                   Activation::kGELUTanh, Activation::kQuickGELU,
                                   Activation::kReLU, Activation::kTanh, Activation::kSigmoid};

// One op in its in-place form, checked three ways against the ordinary form.
template <class InPlace, class Ordinary>
void check_op(const std::string& what, InPlace in_place, Ordinary ordinary) {
  SCOPED_TRACE(what);
  const Tensor source = random_tensor({2, 5, 33, 17}, 7, -6.f, 6.f);
  const Tensor expected = ordinary(source);

  // Sole owner: computed in the same storage.
  Tensor sole = source.clone();
  const void* storage = sole.storage_ptr();
  const Tensor got = in_place(std::move(sole));
  EXPECT_EQ(got.storage_ptr(), storage) << "not computed in place";
  EXPECT_TRUE(SameBits(got, expected));

  // Shared (a reshape view keeps the storage): a new tensor, the input untouched.
  Tensor shared = source.clone();
  const Tensor view = shared.reshape({2 * 5, 33 * 17});
  const Tensor from_shared = in_place(std::move(shared));
  EXPECT_NE(from_shared.storage_ptr(), view.storage_ptr());
  EXPECT_TRUE(SameBits(from_shared, expected));
  EXPECT_TRUE(SameBits(view.reshape(source.shape()), source));

  // Read-only (like model weights): never written.
  const Tensor frozen_source = source.clone();
  const Tensor from_frozen = in_place(frozen_source.frozen());
  EXPECT_NE(from_frozen.storage_ptr(), frozen_source.storage_ptr());
  EXPECT_TRUE(SameBits(from_frozen, expected));
  EXPECT_TRUE(SameBits(frozen_source, source));
}

TEST(CpuInPlaceOps, ActivationsEqualTheOrdinaryOp) {
  for (Activation a : kActivations)
    check_op("activation " + std::to_string(static_cast<int>(a)),
             [&](Tensor x) { return cpu().activation_in_place(std::move(x), a); },
             [&](const Tensor& x) { return cpu().activation(x, a); });
}

TEST(CpuInPlaceOps, AddAndScaleEqualTheOrdinaryOps) {
  const Tensor other = random_tensor({2, 5, 33, 17}, 8);
  check_op("add", [&](Tensor x) { return cpu().add_in_place(std::move(x), other); },
           [&](const Tensor& x) { return cpu().add(x, other); });
  check_op("scale", [&](Tensor x) { return cpu().scale_in_place(std::move(x), 0.1f); },
           [&](const Tensor& x) { return cpu().scale(x, 0.1f); });
  // x + x with both operands the same storage.
  Tensor x = random_tensor({3, 7}, 9);
  const Tensor twice = cpu().add(x, x);
  const Tensor alias = x;
  EXPECT_TRUE(SameBits(cpu().add_in_place(std::move(x), alias), twice));
  EXPECT_THROW(cpu().add_in_place(random_tensor({3, 7}, 1), random_tensor({7, 3}, 2)),
               std::runtime_error);
}

}  // namespace
}  // namespace sdvsr

namespace sdvsr {
namespace {

// Tensor::rows: a view of indices [begin, end) of dimension 0 in the same
// storage, frozen when its tensor is, and never written by an in-place op
// while that tensor still holds the storage.
TEST(TensorRows, IsAViewOfDimensionZeroInTheSameStorage) {
  const Tensor source = random_tensor({6, 4, 3}, 11);
  const Tensor middle = source.rows(2, 5);
  EXPECT_EQ(middle.shape(), (Shape{3, 4, 3}));
  EXPECT_EQ(middle.storage_ptr(), static_cast<const void*>(source.data() + 2 * 12));
  for (int64_t i = 0; i < middle.numel(); ++i) EXPECT_EQ(middle[i], source[2 * 12 + i]) << i;
  EXPECT_EQ(source.rows(6, 6).numel(), 0);
  EXPECT_FALSE(middle.is_borrowed());
  EXPECT_TRUE(source.frozen().rows(0, 1).is_borrowed());
  EXPECT_THROW(source.rows(4, 7), std::invalid_argument);
  EXPECT_THROW(source.rows(3, 2), std::invalid_argument);
  EXPECT_THROW(source.rows(-1, 2), std::invalid_argument);
  EXPECT_THROW(Tensor().rows(0, 0), std::invalid_argument);

  const Tensor before = source.clone();
  const Tensor scaled = cpu().scale_in_place(source.rows(1, 3), 2.f);
  EXPECT_TRUE(SameBits(source, before)) << "an in-place op wrote into a shared view";
  EXPECT_TRUE(SameBits(scaled, cpu().scale(before.rows(1, 3), 2.f)));
}

}  // namespace
}  // namespace sdvsr
