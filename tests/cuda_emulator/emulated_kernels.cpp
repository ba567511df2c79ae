// Runs a kernel's grid on the host, one block at a time. Each thread of a
// block is a fiber that runs until it reaches __syncthreads, a warp-wide
// operation (sync_warp) or returns; when every thread of a warp waits at a
// warp-wide operation, that warp goes on, and when every thread of the block
// waits at __syncthreads, they all go on. The order of the threads
// flips at every barrier, so a kernel that reads what another
// thread writes between two barriers meets both orders. A kernel seen never
// to synchronise runs its threads as plain calls afterwards (most kernels are
// elementwise, and fibers cost a context switch per thread).
#include "cuda_emulator/emulated_kernels.h"

#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace sdvsr::emulated {

RunningThread running{};

namespace {

constexpr size_t kStackBytes = 32 * 1024;  // kernels keep little on the stack
// Below each stack, a page that faults: an overflow stops the test instead of
// writing over the next fiber's stack.
constexpr size_t kGuardBytes = 4096;
constexpr size_t kSlotBytes = kGuardBytes + kStackBytes;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kWarpSize = 32;

// The warp-wide operations' exchange slots, one row per thread of the block
// (blocks run one at a time).
uint32_t g_warp_slots[kMaxThreadsPerBlock][kWarpSlots];

size_t running_thread_index() {
  return running.thread.x +
         size_t{running.block_dim.x} * (running.thread.y + size_t{running.block_dim.y} *
                                                               running.thread.z);
}

// kWaiting: at __syncthreads; kWaitingWarp: at a warp-wide operation.
enum class FiberState { kReady, kWaiting, kWaitingWarp, kDone };

// A fiber switch: saves the callee-saved registers on the running stack,
// stores that stack's pointer in *from, and resumes the stack saved at `to`.
// A few instructions where swapcontext makes a system call (the signal mask)
// per switch: the golden tests' reductions switch tens of millions of times.
// The floating-point control words are not switched: nothing here changes them.
extern "C" void sdvsr_emulator_switch(void** from, void* to);
#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch is written for x86-64"
#endif
asm(R"(
  .pushsection .text
  .globl sdvsr_emulator_switch
  .type sdvsr_emulator_switch, @function
sdvsr_emulator_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size sdvsr_emulator_switch, .-sdvsr_emulator_switch
  .popsection
)");

struct Fiber {
  void* stack_pointer = nullptr;  // where its registers were saved
  FiberState state = FiberState::kReady;
  uint3 index;
};

// Only ever touched with the device lock held (work runs under it).
struct Scheduler {
  void* home = nullptr;  // the scheduler's saved stack pointer
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  bool fibers = false;  // false: threads run as plain calls
  bool synchronised = false;
  const char* kernel = "";
  char* stacks = nullptr;  // kMaxThreadsPerBlock guarded stacks, mapped once
  std::map<std::string, bool> kernel_synchronises;
};

Scheduler& scheduler() {
  static Scheduler* s = new Scheduler;
  return *s;
}

// A fiber's first frame returns here (entered as if called, stack aligned as
// the ABI wants); it never returns: the finished fiber switches home for good.
[[noreturn]] void fiber_main() {
  Scheduler& s = scheduler();
  (*s.body)();
  s.current->state = FiberState::kDone;
  sdvsr_emulator_switch(&s.current->stack_pointer, s.home);
  __builtin_unreachable();
}

// A new fiber's stack: the six registers sdvsr_emulator_switch pops, then
// fiber_main as the address it returns to.
void* fresh_stack(char* base) {
  const auto top = reinterpret_cast<uintptr_t>(base + kStackBytes) & ~uintptr_t{15};
  // After the pops and the return rsp = frame + 56, which must be 8 mod 16 as
  // right after a call.
  auto* frame = reinterpret_cast<uint64_t*>(top - 64);
  for (int r = 0; r < 6; ++r) frame[r] = 0;
  frame[6] = reinterpret_cast<uint64_t>(&fiber_main);
  frame[7] = 0;
  return frame;
}

std::string block_name(const uint3& b) {
  return "block (" + std::to_string(b.x) + ", " + std::to_string(b.y) + ", " +
         std::to_string(b.z) + ")";
}

// Readies every warp whose threads all wait at a warp-wide operation; false
// when there is none.
bool release_warps(std::vector<Fiber>& fibers) {
  bool any = false;
  for (size_t w = 0; w < fibers.size(); w += kWarpSize) {
    const size_t end = std::min(fibers.size(), w + kWarpSize);
    bool all = true;
    for (size_t t = w; t < end && all; ++t) all = fibers[t].state == FiberState::kWaitingWarp;
    if (!all) continue;
    for (size_t t = w; t < end; ++t) fibers[t].state = FiberState::kReady;
    any = true;
  }
  return any;
}

void run_block_with_fibers(Scheduler& s, std::vector<Fiber>& fibers) {
  for (size_t t = 0; t < fibers.size(); ++t) {
    fibers[t].state = FiberState::kReady;
    fibers[t].stack_pointer = fresh_stack(s.stacks + t * kSlotBytes + kGuardBytes);
  }
  for (bool reversed = false;; reversed = !reversed) {
    for (size_t k = 0; k < fibers.size(); ++k) {
      Fiber& f = fibers[reversed ? fibers.size() - 1 - k : k];
      if (f.state != FiberState::kReady) continue;
      running.thread = f.index;
      s.current = &f;
      sdvsr_emulator_switch(&s.home, f.stack_pointer);
    }
    if (release_warps(fibers)) continue;
    size_t waiting = 0, waiting_warp = 0;
    for (const Fiber& f : fibers) {
      waiting += f.state == FiberState::kWaiting;
      waiting_warp += f.state == FiberState::kWaitingWarp;
    }
    if (waiting_warp != 0)
      fail(s.kernel, block_name(running.block) +
                         ": some threads of a warp wait at a warp-wide operation while others of "
                         "that warp returned or wait elsewhere (undefined behaviour on a GPU)");
    if (waiting == 0) return;
    if (waiting != fibers.size())
      fail(s.kernel, block_name(running.block) +
                         ": some threads returned while others wait at __syncthreads (a hang "
                         "or undefined behaviour on a GPU)");
    for (Fiber& f : fibers) f.state = FiberState::kReady;
  }
}

void run_grid(const char* name, dim3 grid, dim3 block, const std::function<void()>& body) {
  Scheduler& s = scheduler();
  if (!s.stacks) {
    void* p = mmap(nullptr, kSlotBytes * kMaxThreadsPerBlock, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fail(name, "no memory for the fibers' stacks");
    for (size_t t = 0; t < kMaxThreadsPerBlock; ++t)
      if (mprotect(static_cast<char*>(p) + t * kSlotBytes, kGuardBytes, PROT_NONE) != 0)
        fail(name, "cannot guard the fibers' stacks");
    s.stacks = static_cast<char*>(p);
  }
  auto known = s.kernel_synchronises.find(name);
  s.fibers = known == s.kernel_synchronises.end() || known->second;
  s.synchronised = false;
  s.kernel = name;
  s.body = &body;
  running.block_dim = block;
  running.grid_dim = grid;
  std::vector<Fiber> fibers;
  if (s.fibers) {
    fibers.resize(static_cast<size_t>(block.x) * block.y * block.z);
    size_t t = 0;
    for (unsigned z = 0; z < block.z; ++z)
      for (unsigned y = 0; y < block.y; ++y)
        for (unsigned x = 0; x < block.x; ++x) fibers[t++].index = uint3{x, y, z};
  }
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        running.block = uint3{bx, by, bz};
        if (s.fibers) {
          run_block_with_fibers(s, fibers);
          continue;
        }
        for (unsigned z = 0; z < block.z; ++z)
          for (unsigned y = 0; y < block.y; ++y)
            for (unsigned x = 0; x < block.x; ++x) {
              running.thread = uint3{x, y, z};
              body();
            }
      }
  if (s.fibers) s.kernel_synchronises[name] = s.synchronised;
}

}  // namespace

namespace {

// Parks the running fiber in `state` (a barrier of the block or of its warp);
// `what` names the operation should the launch run without fibers.
void park(FiberState state, const char* what) {
  Scheduler& s = scheduler();
  if (!s.fibers)
    fail(s.kernel, std::string(what) +
                       " in a launch run without fibers (an earlier launch of this kernel never "
                       "synchronised)");
  s.synchronised = true;
  Fiber* f = s.current;
  f->state = state;
  sdvsr_emulator_switch(&f->stack_pointer, s.home);
}

}  // namespace

void sync_threads() { park(FiberState::kWaiting, "__syncthreads"); }

void sync_warp() { park(FiberState::kWaitingWarp, "a warp-wide operation"); }

int lane_id() { return static_cast<int>(running_thread_index() % kWarpSize); }

uint32_t* warp_slots(int lane) {
  const size_t warp_start = running_thread_index() / kWarpSize * kWarpSize;
  return g_warp_slots[warp_start + static_cast<size_t>(lane)];
}

void launch_kernel(const char* name, dim3 grid, dim3 block, cudaStream_t stream,
                   std::function<void()> thread_body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  const bool valid = threads >= 1 && threads <= kMaxThreadsPerBlock && block.x <= 1024 &&
                     block.y <= 1024 && block.z <= 64 && grid.x >= 1 && grid.x <= 0x7fffffffu &&
                     grid.y >= 1 && grid.y <= 65535 && grid.z >= 1 && grid.z <= 65535;
  if (!valid) {
    record_launch_error(cudaErrorInvalidConfiguration);
    return;
  }
  enqueue(stream, name, [name, grid, block, body = std::move(thread_body)]() {
    run_grid(name, grid, block, body);
  });
}

}  // namespace sdvsr::emulated
