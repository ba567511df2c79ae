#pragma once
// Where the library's non-fatal warnings go (a config key that is ignored, a
// cache that cannot be written). The default prints "warning: ..." on stderr;
// a front end routes them into its own log (the CLI: -q, --log json).
#include <functional>
#include <string>

namespace sdvsr {

using WarningSink = std::function<void(const std::string& line)>;

// Replaces the process-wide sink (an empty one restores the default).
void set_warning_sink(WarningSink sink);
// One line, naming the file it is about.
void warn(const std::string& line);

}  // namespace sdvsr
