#pragma once
// Frames and files are written complete or not at all.
#include <cstdio>
#include <functional>
#include <string>

namespace sdvsr {

// `fill` writes the content into "<path>.tmp-<pid>", which is then flushed,
// closed and renamed to `path`. Any failure (fill throwing included) removes
// the temporary file and throws one line "<path>: <problem>".
void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& fill);

}  // namespace sdvsr
