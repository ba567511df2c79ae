#pragma once
// Read-only file mappings whose resident pages may be dropped at any time:
// the kernel re-reads them from the file on the next access. Weight readers
// register their mappings here, so a backend that keeps its own converted copy
// of a weight (the CPU conv's blocked layout) can give the original's pages
// back and hold each weight in memory once.
#include <cstddef>

namespace sdvsr {

void register_file_mapping(const void* begin, size_t bytes);
void unregister_file_mapping(const void* begin);

// Drops the resident pages wholly inside [p, p + bytes) when that range lies
// in a registered mapping; returns false (and does nothing) otherwise, e.g.
// for weights converted into ordinary memory, which must never be dropped.
bool drop_file_backed_pages(const void* p, size_t bytes);

}  // namespace sdvsr
