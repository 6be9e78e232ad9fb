#include <charconv>
#include <cmath>
#include <stdexcept>

#include "src/codec/stage.h"
#include "src/core/error.h"

namespace deltakit {

// --- the registry: a new stage adds its line here (and its factory to stage.h) -----------------
const std::vector<StageEntry>& stage_registry() {
  static const std::vector<StageEntry> all = {
      {"raw", StageRole::Raw, make_raw_stage},
      {"dare", StageRole::Sparsifier, make_dare_stage},
      {"topk", StageRole::Sparsifier, make_topk_stage},
      {"bitdelta", StageRole::ValueCoder, make_bitdelta_stage},
      {"quant", StageRole::ValueCoder, make_quant_stage},
      {"lowrank", StageRole::Dense, make_lowrank_stage},
  };
  return all;
}

// --- what a stage of another role does not do ---------------------------------------------------
SparseSelection Stage::select(const TensorDelta&, std::span<const float>, std::span<const uint8_t>) const {
  throw std::logic_error(std::string(name()) + " is not a sparsifier");
}
void Stage::encode_values(const ValueStream&, Encoded&) const {
  throw std::logic_error(std::string(name()) + " is not a value coder");
}
std::vector<float> Stage::decode_values(const AttrReader&, const PartSource&, uint64_t,
                                        std::span<const uint64_t>) const {
  throw std::logic_error(std::string(name()) + " is not a value coder");
}
std::unique_ptr<RangeDecoder> Stage::value_decoder(const AttrReader& a, const PartSource& src, uint64_t count,
                                                   std::span<const uint64_t> row_offsets) const {
  return std::make_unique<DenseRangeDecoder>(decode_values(a, src, count, row_offsets));
}
void Stage::encode_dense(const TensorDelta&, std::span<const float>, uint64_t, uint64_t, const ValueType&,
                         Encoded&) const {
  throw std::logic_error(std::string(name()) + " is not a dense coder");
}
std::vector<float> Stage::decode_dense(const AttrReader&, const PartSource&, uint64_t, uint64_t,
                                       const ValueType&) const {
  throw std::logic_error(std::string(name()) + " is not a dense coder");
}

// --- parameters ----------------------------------------------------------------------------------
namespace {
std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}
}  // namespace

std::string recipe_number(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void StageArgs::fail(const std::string& what) const {
  throw Error(ErrorCode::Usage, "", "recipe \"" + recipe_ + "\": " + stage_ + ": " + what);
}

void StageArgs::load(const std::string& params) {
  if (params.empty()) return;
  size_t start = 0;
  for (;;) {
    const size_t p = params.find(',', start);
    const std::string kv = trim(params.substr(start, p == std::string::npos ? std::string::npos : p - start));
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) fail("parameter \"" + kv + "\" is not key=value");
    std::string k = trim(kv.substr(0, eq)), v = trim(kv.substr(eq + 1));
    if (k.empty() || v.empty()) fail("parameter \"" + kv + "\" is not key=value");
    if (!kv_.emplace(k, v).second) fail("parameter \"" + k + "\" given twice");
    if (p == std::string::npos) return;
    start = p + 1;
  }
}

std::string StageArgs::take(const std::string& k, const std::string& dflt) {
  auto it = kv_.find(k);
  if (it == kv_.end()) return dflt;
  std::string v = it->second;
  kv_.erase(it);
  return v;
}

double StageArgs::real(const std::string& k, double dflt, double lo, double hi, bool lo_open) {
  std::string v = take(k, "");
  if (v.empty()) return dflt;
  return parse_real(k, v, lo, hi, lo_open);
}

double StageArgs::parse_real(const std::string& k, const std::string& v, double lo, double hi, bool lo_open) {
  double d = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), d);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !std::isfinite(d)) fail(k + "=" + v + " is not a number");
  if (d < lo || d > hi || (lo_open && d == lo))
    fail(k + "=" + v + " is out of range " + (lo_open ? "(" : "[") + recipe_number(lo) + ", " + recipe_number(hi) +
         "]");
  return d;
}

uint64_t StageArgs::integer(const std::string& k, uint64_t dflt, uint64_t lo, uint64_t hi) {
  std::string v = take(k, "");
  if (v.empty()) return dflt;
  return parse_int(k, v, lo, hi);
}

uint64_t StageArgs::parse_int(const std::string& k, const std::string& v, uint64_t lo, uint64_t hi) {
  uint64_t x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) fail(k + "=" + v + " is not a non-negative integer");
  if (x < lo || x > hi) fail(k + "=" + v + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

bool StageArgs::scope() {
  std::string v = take("scope", "tensor");
  if (v != "tensor" && v != "model") fail("scope=" + v + " is not tensor or model");
  return v == "model";
}

void StageArgs::finish() const {
  if (!kv_.empty()) fail("unknown parameter \"" + kv_.begin()->first + "\"");
}

}  // namespace deltakit
