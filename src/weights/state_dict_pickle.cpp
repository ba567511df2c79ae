#include "weights/state_dict_pickle.h"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <unordered_map>

namespace sdvsr::torch_pickle {

namespace {

// Caps that keep hostile input from exhausting memory; real state_dicts use a
// few objects per tensor.
constexpr size_t kMaxObjects = 4'000'000;
constexpr size_t kMaxStack = 4'000'000;
constexpr size_t kMaxMarks = 100'000;
constexpr size_t kMaxMemo = 4'000'000;
constexpr size_t kMaxGlobalLine = 256;
constexpr int64_t kMaxNumel = int64_t{1} << 50;
constexpr int64_t kMaxRepeatedNumel = int64_t{1} << 26;

enum class Kind { kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict, kGlobal, kStorage, kTensor };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kStr: return "str";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kGlobal: return "global";
    case Kind::kStorage: return "storage";
    case Kind::kTensor: return "tensor";
  }
  return "?";
}

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  Kind kind = Kind::kNone;
  int64_t i = 0;                                        // kBool, kInt
  double f = 0;                                         // kFloat
  std::string s;                                        // kStr; kGlobal: "module.name"
  std::vector<ValuePtr> items;                          // kTuple, kList
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;   // kDict, in insertion order
  std::unique_ptr<TensorRef> tensor;                    // kStorage (storage only), kTensor
};

const std::pair<const char*, DType> kStorageClasses[] = {
    {"torch.FloatStorage", DType::kF32},  {"torch.HalfStorage", DType::kF16},
    {"torch.BFloat16Storage", DType::kBF16}, {"torch.DoubleStorage", DType::kF64},
    {"torch.LongStorage", DType::kI64},   {"torch.IntStorage", DType::kI32},
    {"torch.ShortStorage", DType::kI16},  {"torch.CharStorage", DType::kI8},
    {"torch.ByteStorage", DType::kU8},    {"torch.BoolStorage", DType::kBool}};

constexpr const char* kOrderedDict = "collections.OrderedDict";
constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";
constexpr const char* kRebuildParameter = "torch._utils._rebuild_parameter";

bool allowed_global(const std::string& name) {
  if (name == kOrderedDict || name == kRebuildTensor || name == kRebuildParameter) return true;
  for (const auto& [cls, d] : kStorageClasses)
    if (name == cls) return true;
  return false;
}

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& origin)
      : data_(data), size_(size), origin_(origin) {}
  // Children are unlinked one level at a time so that deep nesting or memo
  // cycles can neither recurse in destructors nor leak.
  ~Unpickler() {
    for (auto& v : arena_) {
      v->items.clear();
      v->entries.clear();
    }
  }

  ValuePtr run();

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw std::runtime_error(origin_ + ": " + problem);
  }
  [[noreturn]] void fail_at(size_t op_pos, const std::string& problem) const {
    fail("pickle byte " + std::to_string(op_pos) + ": " + problem);
  }

  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) fail("truncated pickle (needs " + std::to_string(n) + " bytes at byte " +
                               std::to_string(pos_) + " of " + std::to_string(size_) + ")");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t read_le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
    return v;
  }
  std::string read_line() {
    const size_t start = pos_;
    while (pos_ < size_ && data_[pos_] != '\n') {
      if (pos_ - start >= kMaxGlobalLine) fail("GLOBAL name longer than 256 bytes");
      ++pos_;
    }
    if (pos_ >= size_) fail("truncated pickle (GLOBAL line has no end)");
    std::string s(reinterpret_cast<const char*>(data_ + start), pos_ - start);
    ++pos_;
    return s;
  }

  ValuePtr make(Kind k) {
    if (arena_.size() >= kMaxObjects) fail("pickle holds more than 4M objects");
    arena_.push_back(std::make_shared<Value>());
    arena_.back()->kind = k;
    return arena_.back();
  }
  ValuePtr make_int(Kind k, int64_t v) {
    auto p = make(k);
    p->i = v;
    return p;
  }
  ValuePtr make_str(std::string s) {
    auto p = make(Kind::kStr);
    p->s = std::move(s);
    return p;
  }

  void push(ValuePtr v) {
    if (stack_.size() >= kMaxStack) fail("pickle stack deeper than 4M entries");
    stack_.push_back(std::move(v));
  }
  ValuePtr pop(size_t op_pos) {
    if (stack_.size() <= floor()) fail_at(op_pos, "pops an empty stack");
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  ValuePtr& top(size_t op_pos) {
    if (stack_.size() <= floor()) fail_at(op_pos, "reads an empty stack");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<ValuePtr> pop_mark(size_t op_pos) {
    if (marks_.empty()) fail_at(op_pos, "needs a MARK but there is none");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> items(std::make_move_iterator(stack_.begin() + static_cast<ptrdiff_t>(m)),
                                std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  ValuePtr& expect(ValuePtr& v, Kind k, size_t op_pos, const char* what) {
    if (v->kind != k)
      fail_at(op_pos, std::string(what) + " must be a " + kind_name(k) + ", got " + kind_name(v->kind));
    return v;
  }
  void memo_put(uint64_t index, size_t op_pos) {
    if (memo_.size() >= kMaxMemo && !memo_.count(index)) fail_at(op_pos, "memo holds more than 4M entries");
    memo_[index] = top(op_pos);
  }
  ValuePtr memo_get(uint64_t index, size_t op_pos) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail_at(op_pos, "memo entry " + std::to_string(index) + " was never stored");
    return it->second;
  }

  ValuePtr global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    if (!allowed_global(full))
      fail("refuses pickle global '" + full + "' (only plain state_dicts are read)");
    auto g = make(Kind::kGlobal);
    g->s = full;
    return g;
  }

  ValuePtr persistent_load(ValuePtr pid, size_t op_pos);
  ValuePtr reduce(ValuePtr callable, ValuePtr args, size_t op_pos);
  ValuePtr rebuild_tensor(const std::vector<ValuePtr>& a, size_t op_pos);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& origin_;
  std::vector<ValuePtr> arena_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
};

ValuePtr Unpickler::persistent_load(ValuePtr pid, size_t op_pos) {
  // ('storage', <dtype>Storage, key, location, numel)
  if (pid->kind != Kind::kTuple || pid->items.size() != 5)
    fail_at(op_pos, "persistent id is not a 5-tuple ('storage', class, key, location, numel)");
  const auto& it = pid->items;
  if (it[0]->kind != Kind::kStr || it[0]->s != "storage")
    fail_at(op_pos, "persistent id does not start with 'storage'");
  if (it[1]->kind != Kind::kGlobal) fail_at(op_pos, "persistent id storage class is not a global");
  auto storage = make(Kind::kStorage);
  storage->tensor = std::make_unique<TensorRef>();
  StorageRef& ref = storage->tensor->storage;
  bool known = false;
  for (const auto& [cls, d] : kStorageClasses)
    if (it[1]->s == cls) {
      ref.dtype = d;
      known = true;
    }
  if (!known) fail_at(op_pos, "'" + it[1]->s + "' is not a storage class");
  if (it[2]->kind != Kind::kStr || it[2]->s.empty() || it[2]->s.size() > 64)
    fail_at(op_pos, "persistent id storage key is not a short string");
  for (char c : it[2]->s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      fail_at(op_pos, "persistent id storage key '" + it[2]->s + "' has characters other than [A-Za-z0-9_]");
  ref.key = it[2]->s;
  if (it[3]->kind != Kind::kStr) fail_at(op_pos, "persistent id location is not a string");
  if (it[4]->kind != Kind::kInt || it[4]->i < 0 || it[4]->i > kMaxNumel)
    fail_at(op_pos, "persistent id numel is not a sane non-negative integer");
  ref.numel = it[4]->i;
  return storage;
}

ValuePtr Unpickler::rebuild_tensor(const std::vector<ValuePtr>& a, size_t op_pos) {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (a.size() != 6 && a.size() != 7)
    fail_at(op_pos, "_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
  if (a[0]->kind != Kind::kStorage) fail_at(op_pos, "_rebuild_tensor_v2 argument 1 is not a storage");
  if (a[1]->kind != Kind::kInt || a[1]->i < 0)
    fail_at(op_pos, "_rebuild_tensor_v2 storage offset is not a non-negative integer");
  if (a[2]->kind != Kind::kTuple || a[3]->kind != Kind::kTuple || a[2]->items.size() != a[3]->items.size())
    fail_at(op_pos, "_rebuild_tensor_v2 size and stride are not tuples of equal length");
  if (a[4]->kind != Kind::kBool && a[4]->kind != Kind::kInt)
    fail_at(op_pos, "_rebuild_tensor_v2 requires_grad is not a bool");
  if (a[5]->kind != Kind::kDict || !a[5]->entries.empty())
    fail_at(op_pos, "_rebuild_tensor_v2 backward_hooks is not an empty dict");
  if (a.size() == 7 && a[6]->kind != Kind::kNone && a[6]->kind != Kind::kDict)
    fail_at(op_pos, "_rebuild_tensor_v2 metadata is not a dict");

  auto t = make(Kind::kTensor);
  t->tensor = std::make_unique<TensorRef>();
  TensorRef& ref = *t->tensor;
  ref.storage = a[0]->tensor->storage;
  ref.offset = a[1]->i;
  // Highest element touched, computed in 128 bits so hostile sizes cannot wrap.
  __int128 numel = 1, last = ref.offset;
  for (size_t d = 0; d < a[2]->items.size(); ++d) {
    const auto& sz = a[2]->items[d];
    const auto& st = a[3]->items[d];
    if (sz->kind != Kind::kInt || sz->i < 0 || sz->i > kMaxNumel)
      fail_at(op_pos, "_rebuild_tensor_v2 size entry is not a sane non-negative integer");
    if (st->kind != Kind::kInt || st->i < 0 || st->i > kMaxNumel)
      fail_at(op_pos, "_rebuild_tensor_v2 stride entry is not a sane non-negative integer");
    ref.size.push_back(sz->i);
    ref.stride.push_back(st->i);
    numel *= sz->i;
    if (numel > kMaxNumel) fail_at(op_pos, "_rebuild_tensor_v2 size is too large");
    if (sz->i > 0) last += static_cast<__int128>(sz->i - 1) * st->i;
  }
  // Stride-0 (expanded) views may repeat elements; a hostile one could ask for
  // far more memory than the file holds, so those stay small.
  if (numel > ref.storage.numel && numel > kMaxRepeatedNumel)
    fail_at(op_pos, "tensor view of " + std::to_string(static_cast<int64_t>(numel)) +
                        " elements repeats its storage beyond 64M elements");
  const bool fits = numel == 0 ? ref.offset <= ref.storage.numel : last < ref.storage.numel;
  if (!fits)
    fail_at(op_pos, "tensor view (offset " + std::to_string(ref.offset) + ", size " +
                        shape_str(ref.size) + ", stride " + shape_str(ref.stride) +
                        ") reaches past its storage '" + ref.storage.key + "' of " +
                        std::to_string(ref.storage.numel) + " elements");
  return t;
}

ValuePtr Unpickler::reduce(ValuePtr callable, ValuePtr args, size_t op_pos) {
  if (callable->kind != Kind::kGlobal) fail_at(op_pos, "REDUCE on a non-callable " + std::string(kind_name(callable->kind)));
  if (args->kind != Kind::kTuple) fail_at(op_pos, "REDUCE arguments are not a tuple");
  const auto& a = args->items;
  if (callable->s == kOrderedDict) {
    if (!a.empty()) fail_at(op_pos, "collections.OrderedDict is only read with no arguments");
    return make(Kind::kDict);
  }
  if (callable->s == kRebuildTensor) return rebuild_tensor(a, op_pos);
  if (callable->s == kRebuildParameter) {
    // (data, requires_grad, backward_hooks): the parameter is its data.
    if (a.size() != 3 || a[0]->kind != Kind::kTensor)
      fail_at(op_pos, "_rebuild_parameter takes (tensor, requires_grad, backward_hooks)");
    return a[0];
  }
  fail_at(op_pos, "'" + callable->s + "' cannot be called");
}

ValuePtr Unpickler::run() {
  while (true) {
    const size_t op_pos = pos_;
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t v = *take(1);
        if (v > 5) fail_at(op_pos, "unsupported pickle protocol " + std::to_string(v));
        break;
      }
      case 0x95: take(8); break;  // FRAME: a hint only
      case '.': {                 // STOP
        if (stack_.empty()) fail_at(op_pos, "STOP with an empty stack");
        return stack_.back();
      }
      case '(':  // MARK
        if (marks_.size() >= kMaxMarks) fail_at(op_pos, "more than 100000 nested MARKs");
        marks_.push_back(stack_.size());
        break;
      case '}': push(make(Kind::kDict)); break;
      case ']': push(make(Kind::kList)); break;
      case ')': push(make(Kind::kTuple)); break;
      case 't': {  // TUPLE
        auto t = make(Kind::kTuple);
        t->items = pop_mark(op_pos);
        push(t);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t n = op - 0x84u;
        auto t = make(Kind::kTuple);
        t->items.resize(n);
        for (size_t k = n; k-- > 0;) t->items[k] = pop(op_pos);
        push(t);
        break;
      }
      case 'l': {  // LIST
        auto l = make(Kind::kList);
        l->items = pop_mark(op_pos);
        push(l);
        break;
      }
      case 'd': {  // DICT
        auto items = pop_mark(op_pos);
        if (items.size() % 2) fail_at(op_pos, "DICT with an odd number of items");
        auto d = make(Kind::kDict);
        for (size_t k = 0; k < items.size(); k += 2) d->entries.emplace_back(items[k], items[k + 1]);
        push(d);
        break;
      }
      case 's': {  // SETITEM
        ValuePtr v = pop(op_pos), k = pop(op_pos);
        expect(top(op_pos), Kind::kDict, op_pos, "SETITEM target")->entries.emplace_back(k, v);
        break;
      }
      case 'u': {  // SETITEMS
        auto items = pop_mark(op_pos);
        if (items.size() % 2) fail_at(op_pos, "SETITEMS with an odd number of items");
        auto& d = expect(top(op_pos), Kind::kDict, op_pos, "SETITEMS target");
        for (size_t k = 0; k < items.size(); k += 2) d->entries.emplace_back(items[k], items[k + 1]);
        break;
      }
      case 'a': {  // APPEND
        ValuePtr v = pop(op_pos);
        expect(top(op_pos), Kind::kList, op_pos, "APPEND target")->items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark(op_pos);
        auto& l = expect(top(op_pos), Kind::kList, op_pos, "APPENDS target");
        l->items.insert(l->items.end(), items.begin(), items.end());
        break;
      }
      case 'X':     // BINUNICODE
      case 0x8c:    // SHORT_BINUNICODE
      case 0x8d: {  // BINUNICODE8
        const uint64_t n = read_le(op == 'X' ? 4 : op == 0x8c ? 1 : 8);
        if (n > size_) fail("truncated pickle (string of " + std::to_string(n) + " bytes at byte " + std::to_string(op_pos) + ")");
        const uint8_t* p = take(static_cast<size_t>(n));
        push(make_str(std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n))));
        break;
      }
      case 'J': push(make_int(Kind::kInt, static_cast<int32_t>(read_le(4)))); break;  // BININT
      case 'K': push(make_int(Kind::kInt, static_cast<int64_t>(read_le(1)))); break;  // BININT1
      case 'M': push(make_int(Kind::kInt, static_cast<int64_t>(read_le(2)))); break;  // BININT2
      case 0x8a: {  // LONG1: little-endian two's complement
        const size_t n = static_cast<size_t>(read_le(1));
        if (n > 8) fail_at(op_pos, "LONG1 of " + std::to_string(n) + " bytes does not fit 64 bits");
        uint64_t v = n ? read_le(n) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        push(make_int(Kind::kInt, static_cast<int64_t>(v)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        const uint8_t* p = take(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
        auto f = make(Kind::kFloat);
        std::memcpy(&f->f, &bits, 8);
        push(f);
        break;
      }
      case 0x88: push(make_int(Kind::kBool, 1)); break;  // NEWTRUE
      case 0x89: push(make_int(Kind::kBool, 0)); break;  // NEWFALSE
      case 'N': push(make(Kind::kNone)); break;
      case 'q': memo_put(read_le(1), op_pos); break;  // BINPUT
      case 'r': memo_put(read_le(4), op_pos); break;  // LONG_BINPUT
      case 0x94: memo_put(memo_.size(), op_pos); break;  // MEMOIZE
      case 'h': push(memo_get(read_le(1), op_pos)); break;  // BINGET
      case 'j': push(memo_get(read_le(4), op_pos)); break;  // LONG_BINGET
      case 'c': {  // GLOBAL
        std::string module = read_line();
        std::string name = read_line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        ValuePtr name = pop(op_pos), module = pop(op_pos);
        if (module->kind != Kind::kStr || name->kind != Kind::kStr)
          fail_at(op_pos, "STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case 'R': {  // REDUCE
        ValuePtr args = pop(op_pos), callable = pop(op_pos);
        push(reduce(callable, args, op_pos));
        break;
      }
      case 'b': {  // BUILD: only an OrderedDict's attribute dict (state_dict._metadata), ignored
        ValuePtr state = pop(op_pos);
        if (top(op_pos)->kind != Kind::kDict || (state->kind != Kind::kDict && state->kind != Kind::kNone))
          fail_at(op_pos, std::string("BUILD of a ") + kind_name(top(op_pos)->kind) + " with a " +
                              kind_name(state->kind) + " state is not part of a state_dict");
        break;
      }
      case 'Q': {  // BINPERSID
        ValuePtr pid = pop(op_pos);
        push(persistent_load(pid, op_pos));
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail_at(op_pos, std::string("unsupported pickle opcode ") + hex);
      }
    }
  }
}

}  // namespace

std::vector<std::pair<std::string, TensorRef>> read_state_dict(const uint8_t* data, size_t size,
                                                               const std::string& origin) {
  Unpickler u(data, size, origin);
  ValuePtr root = u.run();
  if (root->kind != Kind::kDict)
    throw std::runtime_error(origin + ": checkpoint holds a " + kind_name(root->kind) +
                             ", not a state_dict");
  std::vector<std::pair<std::string, TensorRef>> out;
  for (const auto& [k, v] : root->entries) {
    if (k->kind != Kind::kStr)
      throw std::runtime_error(origin + ": state_dict has a " + std::string(kind_name(k->kind)) + " key");
    if (v->kind != Kind::kTensor)
      throw std::runtime_error(origin + ": entry '" + k->s + "' is a " + kind_name(v->kind) +
                               ", not a tensor (only plain state_dicts are read)");
    out.emplace_back(k->s, *v->tensor);
  }
  return out;
}

}  // namespace sdvsr::torch_pickle
