#pragma once
// The input layout of the original inference.py: IN holds one folder per
// sequence, each holding that sequence's frames; the output of sequence S goes
// to OUT/<name of IN>/<S>/ under the frames' own file names.
//
// The original sorts names as plain strings; here names are in natural order
// (digit runs compared as numbers: frame2 < frame10), which is the same order
// for zero-padded names such as frame_0001.png.
#include <string>
#include <vector>

namespace sdvsr {

// True when `a` comes before `b` in natural order: runs of digits compare by
// numeric value (then fewer leading zeros first), other characters bytewise;
// names that tie are ordered bytewise so the order is total.
bool natural_less(const std::string& a, const std::string& b);

// Full paths of the image files (by extension: png, jpg, jpeg, bmp, webp, tif,
// tiff; any case) directly inside `folder`, in natural order of their names.
// Hidden files (leading '.') and sub-folders are skipped. Throws naming the
// folder when it cannot be read.
std::vector<std::string> list_frames(const std::string& folder);

// Full paths of the sub-folders (sequences) of `folder`, in natural order;
// hidden ones are skipped.
std::vector<std::string> list_sequences(const std::string& folder);

// OUT/<last path component of IN>/<sequence name> (inference.py's target_path);
// a trailing '/' on IN is ignored.
std::string sequence_output_dir(const std::string& out_path, const std::string& in_path,
                                const std::string& sequence_name);

}  // namespace sdvsr
