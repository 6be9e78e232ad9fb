// One stage of a recipe's chain, the interface each codec file implements:
//   a sparsifier (dare, topk) chooses positions and their values;
//   a value coder (bitdelta, quant) stores a stream of values (a dense tensor, or a sparsifier's);
//   a dense coder (lowrank) stores a whole tensor;
//   raw stands alone (its tensors are stored by the raw TensorCodec, src/codec/codec.h).
// A stage is made from its text ("dare:p=0.9,seed=3") by its factory in the registry
// (src/codec/stages.cpp); the recipe grammar (src/codec/recipe.h) composes stages by role, so a
// new codec is one file with a Stage subclass and its factory, plus one registry line.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "src/codec/cherry.h"
#include "src/codec/codec_types.h"
#include "src/codec/delta_product.h"
#include "src/codec/range_decoder.h"
#include "src/codec/score_cut.h"
#include "src/codec/sparse.h"
#include "src/codec/value_stream.h"

namespace deltakit {

// A tensor's fp32 delta and what encoding it needs besides.
struct TensorDelta {
  std::string name;
  DType dtype = DType::F32;  // the tensor's dtype (F32, F16 or BF16)
  std::vector<uint64_t> shape;
  std::span<const float> delta;  // numel finite values
  Importance importance;         // for cherry
  unsigned threads = 0;
  const ScoreCut* cut = nullptr;  // the model-wide cut, for a recipe with a scope=model stage
};

enum class StageRole : uint8_t { Raw, Sparsifier, ValueCoder, Dense };

// The "key=value,..." parameters of one stage, taken one by one; fail() and unknown or repeated
// keys throw Error(Usage) naming the recipe and the stage.
class StageArgs {
 public:
  StageArgs(std::string recipe, std::string stage) : recipe_(std::move(recipe)), stage_(std::move(stage)) {}
  [[noreturn]] void fail(const std::string& what) const;
  void load(const std::string& params);
  bool has(const std::string& k) const { return kv_.count(k) != 0; }
  std::string take(const std::string& k, const std::string& dflt);
  double real(const std::string& k, double dflt, double lo, double hi, bool lo_open = false);
  double parse_real(const std::string& k, const std::string& v, double lo, double hi, bool lo_open);
  uint64_t integer(const std::string& k, uint64_t dflt, uint64_t lo, uint64_t hi);
  uint64_t parse_int(const std::string& k, const std::string& v, uint64_t lo, uint64_t hi);
  bool scope();  // scope=[tensor]|model: whose budget a topk/cherry stage spends
  void finish() const;

 private:
  std::string recipe_, stage_;
  std::map<std::string, std::string> kv_;
};

// A number as the canonical recipe text writes it (shortest round trip).
std::string recipe_number(double v);

// A value coder fed a dense tensor's δ a block at a time in two passes — statistics over every
// block, then encoding — so compress never holds the tensor's δ whole (the fused pass of
// src/codec/codec.h). Blocks come in order and must be those block_end() draws; the result is the
// same bytes encode_values() gives for the whole stream.
class BlockEncoder {
 public:
  virtual ~BlockEncoder() = default;
  virtual uint64_t block_end(uint64_t first) const = 0;  // the block starting at `first` ends here
  virtual void stats(uint64_t first, std::span<const float> block) = 0;
  // Whether encoding needs the blocks again after the statistics (a coder that can code each
  // block as it sees it does everything in stats()).
  virtual bool second_pass() const { return true; }
  virtual void encode(uint64_t first, std::span<const float> block) = 0;
  virtual void finish(Encoded& e) = 0;  // parts, attributes and the measured error
};

// fn(first, block) over a stream in memory, in the blocks `enc` draws.
template <class Fn>
void for_each_block(const BlockEncoder& enc, std::span<const float> values, Fn fn) {
  for (uint64_t first = 0, end; first < values.size(); first = end) {
    end = enc.block_end(first);
    fn(first, values.subspan(first, end - first));
  }
}

// A block encoder fed a stream already in memory (the whole-δ path): its passes, then finish.
inline void encode_in_blocks(BlockEncoder& enc, std::span<const float> values, Encoded& out) {
  for_each_block(enc, values, [&](uint64_t first, std::span<const float> b) { enc.stats(first, b); });
  if (enc.second_pass())
    for_each_block(enc, values, [&](uint64_t first, std::span<const float> b) { enc.encode(first, b); });
  enc.finish(out);
}

// A value coder's side of a cherry's fused pass (Stage::cherry_coder, src/codec/cherry_stream.h):
// its statistics pass, its reconstruction after it, and the refit with the cherries left out.
class CherryCoder {
 public:
  virtual ~CherryCoder() = default;
  virtual uint64_t block_end(uint64_t first) const = 0;
  virtual void stats(uint64_t first, std::span<const float> block) = 0;
  // Whether each row is a unit of the statistics, so reconstruct() of a row is valid as soon as
  // that row's stats are in (a one-pass cherry per row).
  virtual bool rows_are_units() const { return false; }
  // δ̂ of the chain alone over the block's entries (after the stats of the units they lie in)
  virtual void reconstruct(uint64_t first, std::span<const float> block, float* recon) = 0;
  // every block once, in index order, with the positions (ascending, inside the block) and δ of
  // the entries cherries took from it
  virtual void refit(uint64_t first, std::span<const float> block, std::span<const uint64_t> kept,
                     std::span<const float> kept_values) = 0;
  // Whether refit reads the block; where it does not, the cherries may be handed over at once
  // (one call, the tensor's every cherry) and the pair need not be read again.
  virtual bool refit_reads_block() const { return true; }
  // parts and attributes; err_sq over the entries not kept, delta_sq over all
  virtual void finish(Encoded& e) = 0;
  // Where the score 1·(δ − δ̂)² is a function of |δ| that falls toward the scale and rises past
  // it (BitDelta's (|δ| − α)²), after the stats: δ̂ at some positions (ascending) holding δ, and
  // the largest score an entry with |δ| below m can have (magnitude_kept.h).
  virtual bool scores_bounded_by_magnitude() const { return false; }
  virtual void reconstruct_at(std::span<const uint32_t> /*positions*/, std::span<const float> /*delta*/,
                              float* /*recon*/) {}
  virtual float score_bound_below(float /*m*/) const { return 0.0f; }
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual const char* name() const = 0;
  virtual StageRole role() const = 0;
  // Every parameter spelled out after the name, e.g. ":p=0.9,rescale=auto,seed=0" ("" for none).
  virtual std::string params() const = 0;
  // Why this stage cannot code a tensor of this shape ("" if it can).
  virtual std::string unsuitable(const std::vector<uint64_t>& /*shape*/) const { return ""; }
  // scope=model: the stage keeps model_budget(N) entries over every tensor that has it.
  virtual bool model_scope() const { return false; }
  virtual uint64_t model_budget(uint64_t /*elements*/) const { return 0; }
  // One scale per unit that decoding multiplies (scale distillation can fit them).
  virtual bool fittable_scales() const { return false; }

  // Sparsifier: the kept positions and values (entries in `skip` never kept); attributes of its own.
  virtual SparseSelection select(const TensorDelta& t, std::span<const float> delta,
                                 std::span<const uint8_t> skip) const;
  // Alone in a recipe, the same selection and its stored values block by block, for the tensor
  // `name` of n entries of `dtype` (its values' type); nullptr where this sparsifier has none.
  virtual std::unique_ptr<BlockEncoder> sparse_block_encoder(std::string_view /*name*/, DType /*dtype*/,
                                                             uint64_t /*n*/) const {
    return nullptr;
  }
  virtual void add_attrs(Encoded& /*e*/) const {}
  // Value coder.
  virtual void encode_values(const ValueStream& s, Encoded& e) const;
  // The same for a dense rows × cols stream with nothing skipped, block by block; nullptr where
  // this coder has no block form.
  virtual std::unique_ptr<BlockEncoder> block_encoder(uint64_t /*rows*/, uint64_t /*cols*/) const { return nullptr; }
  // Its side of a cherry's fused pass over a dense rows × cols stream; nullptr where it has none.
  virtual std::unique_ptr<CherryCoder> cherry_coder(uint64_t /*rows*/, uint64_t /*cols*/) const { return nullptr; }
  virtual std::vector<float> decode_values(const AttrReader& a, const PartSource& src, uint64_t count,
                                           std::span<const uint64_t> row_offsets) const;
  // The same values a range at a time, held in the coder's stored form (the default holds
  // decode_values' result).
  virtual std::unique_ptr<RangeDecoder> value_decoder(const AttrReader& a, const PartSource& src, uint64_t count,
                                                      std::span<const uint64_t> row_offsets) const;
  // Dense coder (a rows × cols view of the tensor).
  virtual void encode_dense(const TensorDelta& t, std::span<const float> delta, uint64_t rows, uint64_t cols,
                            const ValueType& vt, Encoded& e) const;
  virtual std::vector<float> decode_dense(const AttrReader& a, const PartSource& src, uint64_t rows, uint64_t cols,
                                          const ValueType& vt) const;
  // Serving (src/codec/delta_product.h): the stored tensor held in this coder's compressed form,
  // for a value coder over a dense rows × cols stream or a dense coder; nullptr where the coder
  // has none (the chain then holds its decoded δ̂ dense).
  virtual std::unique_ptr<DeltaProduct> value_product(const AttrReader& /*a*/, const PartSource& /*src*/,
                                                      uint64_t /*rows*/, uint64_t /*cols*/) const {
    return nullptr;
  }
  virtual std::unique_ptr<DeltaProduct> dense_product(const AttrReader& /*a*/, const PartSource& /*src*/,
                                                      uint64_t /*rows*/, uint64_t /*cols*/,
                                                      const ValueType& /*vt*/) const {
    return nullptr;
  }
};

// The registry: every stage's name and factory, in the order error messages list them.
using StageFactory = std::unique_ptr<Stage> (*)(StageArgs& args, uint64_t default_seed);
struct StageEntry {
  const char* name;
  StageRole role;
  StageFactory make;
};
const std::vector<StageEntry>& stage_registry();

// The factories, one per codec file.
std::unique_ptr<Stage> make_raw_stage(StageArgs& args, uint64_t seed);
std::unique_ptr<Stage> make_dare_stage(StageArgs& args, uint64_t seed);
std::unique_ptr<Stage> make_topk_stage(StageArgs& args, uint64_t seed);
std::unique_ptr<Stage> make_bitdelta_stage(StageArgs& args, uint64_t seed);
std::unique_ptr<Stage> make_quant_stage(StageArgs& args, uint64_t seed);
std::unique_ptr<Stage> make_lowrank_stage(StageArgs& args, uint64_t seed);

}  // namespace deltakit
