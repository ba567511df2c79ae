#pragma once
// RAFT's weights from torchvision's published checkpoint, cached where torch.hub
// keeps it ($TORCH_HOME/hub/checkpoints/<file name>), so PyTorch users share it.
#include <cstdint>
#include <functional>
#include <string>

namespace sdvsr::hub {

inline constexpr const char* kRaftUrl =
    "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth";

struct TorchHubOptions {
  std::string url;         // empty: $SDVSR_RAFT_URL, else kRaftUrl
  std::string torch_home;  // empty: torch_home()
  bool offline = false;    // cache only (also when HF_HUB_OFFLINE=1)
  std::function<void(uint64_t, uint64_t)> progress;  // (bytes so far, total or 0)
  long connect_timeout_s = 10;
  long stall_timeout_s = 30;
  int max_stalled_attempts = 5;
  double retry_delay_s = 1.0;
};

// $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch (torch.hub's rule).
std::string torch_home();
// The "-<hex>." part of a checkpoint file name that torch.hub checks the sha256
// against ("" when the name has none).
std::string torch_hash_prefix(const std::string& file_name);

// The local path of the checkpoint named by the URL's last path component; downloads
// it (resumable, via <file>.partial) when absent or when its sha256 does not start
// with the name's hash prefix. Throws one line naming the URL or file and the problem.
std::string fetch_torch_checkpoint(const TorchHubOptions& opts);
// fetch_torch_checkpoint for RAFT (the default URL).
std::string fetch_raft(const TorchHubOptions& opts = {});

}  // namespace sdvsr::hub
