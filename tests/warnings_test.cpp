// Library warnings go to the sink a front end installs, and back to stderr
// when it is removed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/warnings.h"

namespace sdvsr {
namespace {

TEST(Warnings, GoToTheInstalledSink) {
  std::vector<std::string> seen;
  set_warning_sink([&seen](const std::string& line) { seen.push_back(line); });
  warn("a.json: first");
  warn("b.json: second");
  set_warning_sink({});
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "a.json: first");
  EXPECT_EQ(seen[1], "b.json: second");
  testing::internal::CaptureStderr();
  warn("c.json: third");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "warning: c.json: third\n");
  EXPECT_EQ(seen.size(), 2u);
}

}  // namespace
}  // namespace sdvsr
