#include "src/codec/tensor_codec.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "src/codec/bits.h"
#include "src/codec/cherry_stream.h"
#include "src/codec/stage.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace deltakit {

void store_positions(Encoded& e, const std::string& prefix, CodedPositions c, uint64_t count) {
  e.attrs[prefix + ".count"] = count;
  e.attrs[prefix + ".positions_coding"] = c.coding;
  e.attrs[prefix + ".positions_bytes"] = c.bytes.size();
  e.add({prefix + ".positions", PartKind::U8, {c.bytes.size()}, std::move(c.bytes), ""});
}

namespace {

struct Geometry {
  uint64_t n, rows, cols;
};
Geometry geometry(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  uint64_t cols = shape.empty() ? 1 : shape.back();
  uint64_t rows = cols ? n / cols : 0;
  return {n, rows, cols};
}

void add_positions(Encoded& e, const std::string& prefix, std::span<const uint64_t> pos, uint64_t n) {
  store_positions(e, prefix, encode_positions(pos, n), pos.size());
}

// A sparse stream's position part, as stored, with its coding and count.
struct StoredPositions {
  std::string coding;
  uint64_t count = 0;
  std::vector<uint8_t> bytes;
};

StoredPositions read_position_bytes(const AttrReader& a, const PartSource& src, const std::string& prefix, uint64_t n) {
  StoredPositions p{a.str(prefix + ".positions_coding"), a.u64(prefix + ".count", n), {}};
  const uint64_t max_bytes = p.coding == "bitmap" ? bitmap_bytes(n) : 10 * p.count;
  const uint64_t nbytes = a.u64(prefix + ".positions_bytes", max_bytes);
  p.bytes = src.read(prefix + ".positions", PartKind::U8, {nbytes}, "");
  return p;
}

std::vector<uint64_t> read_positions(const AttrReader& a, const PartSource& src, const std::string& prefix,
                                     uint64_t n) {
  const StoredPositions p = read_position_bytes(a, src, prefix, n);
  return decode_positions(p.coding, p.bytes, n, p.count, a.where);
}

// A sparse stream's positions and its values as stored (`prefix`.positions, `prefix`.values), held
// in that small form: 32-bit positions where the tensor allows, values expanded when decoded.
SparseRangeDecoder stored_sparse(const AttrReader& a, const PartSource& src, const std::string& prefix, uint64_t n,
                                 const ValueType& vt) {
  StoredPositions p = read_position_bytes(a, src, prefix, n);
  const uint64_t count = p.count;
  auto values = [&] { return src.read(prefix + ".values", vt.kind, {count}, vt.encoding); };
  if (n <= (uint64_t{1} << 32)) {
    auto pos = decode_positions32(p.coding, p.bytes, n, count, a.where);
    std::vector<uint8_t>().swap(p.bytes);  // the coded form gone before the values arrive
    return {std::move(pos), values(), vt.dtype};
  }
  auto pos = decode_positions(p.coding, p.bytes, n, count, a.where);
  std::vector<uint8_t>().swap(p.bytes);
  return {std::move(pos), values(), vt.dtype};
}

}  // namespace

std::optional<StoredDare> stored_dare_alone(const AttrReader& a, const PartSource& src, uint64_t n, DType dtype) {
  if (!a.attrs.contains("codec") || a.attrs["codec"] != "dare" || !dtype_is_float_decodable(dtype)) return std::nullopt;
  if (src.names().size() != 2 || !src.has("dare.positions") || !src.has("dare.values")) return std::nullopt;
  const ValueType vt = value_type_for(dtype);
  StoredPositions p = read_position_bytes(a, src, "dare", n);
  StoredDare d;
  d.positions = decode_positions(p.coding, p.bytes, n, p.count, a.where);
  d.values = src.read("dare.values", vt.kind, {p.count}, vt.encoding);
  return d;
}

namespace {

// A sparsifier's error without a decoded copy: δ̂ is its stored values (as decoding reads them)
// at its positions and zero elsewhere, built a cache-sized block at a time.
void measure_sparse_error(Encoded& e, std::span<const float> delta, std::span<const uint64_t> pos,
                          const std::vector<float>& stored) {
  constexpr uint64_t kBlock = 2048;
  float recon[kBlock];
  ErrorLanes lanes;
  uint64_t j = 0;
  for (uint64_t b = 0; b < delta.size(); b += kBlock) {
    const uint64_t m = std::min<uint64_t>(kBlock, delta.size() - b);
    std::fill(recon, recon + m, 0.0f);
    for (; j < pos.size() && pos[j] < b + m; ++j) recon[pos[j] - b] = stored[j];
    lanes.add(delta, b, b + m, recon);
  }
  const ErrorNorms norms = lanes.sums();
  e.error_measured = true, e.err_sq = norms.err_sq, e.delta_sq = norms.delta_sq;
}

Encoded encode_chain(const Recipe& r, const TensorDelta& t, std::span<const float> delta, std::span<const uint8_t> skip,
                     float* recon_out = nullptr) {
  const Geometry g = geometry(t.shape);
  const ValueType vt = value_type_for(t.dtype);
  const Stage& first = *r.chain[0];
  Encoded e;
  switch (first.role()) {
    case StageRole::Sparsifier: {
      const std::string prefix = first.name();
      SparseSelection sel = first.select(t, delta, skip);
      add_positions(e, prefix, sel.positions, g.n);
      first.add_attrs(e);
      if (r.chain.size() == 2) {
        auto rows = sparse_row_offsets(sel.positions, g.rows, g.cols);
        r.chain[1]->encode_values(ValueStream{sel.values, rows, {}}, e);
        e.error_measured = false;  // the coder saw only the kept values
      } else {
        e.add({prefix + ".values", vt.kind, {sel.values.size()}, store_values(vt, sel.values), vt.encoding});
        if (skip.empty()) measure_sparse_error(e, delta, sel.positions, load_values(vt, e.parts.back().bytes));
      }
      break;
    }
    case StageRole::ValueCoder: {
      auto rows = dense_row_offsets(g.rows, g.cols);
      first.encode_values(ValueStream{delta, rows, skip, recon_out}, e);
      if (!skip.empty()) e.error_measured = false;  // the skipped entries are a cherry's
      break;
    }
    case StageRole::Dense: first.encode_dense(t, delta, g.rows, g.cols, vt, e); break;
    case StageRole::Raw: throw Error(ErrorCode::Usage, "", "tensor '" + t.name + "': raw is not a lossy chain");
  }
  e.attrs["recipe"] = r.canonical();
  e.attrs["codec"] = r.codec_names();
  return e;
}

std::unique_ptr<RangeDecoder> chain_decoder(const Recipe& r, const AttrReader& a, const PartSource& src,
                                            const Geometry& g, const ValueType& vt) {
  const Stage& first = *r.chain[0];
  switch (first.role()) {
    case StageRole::Sparsifier: {
      const std::string prefix = first.name();
      if (r.chain.size() == 2) {
        auto pos = read_positions(a, src, prefix, g.n);
        auto rows = sparse_row_offsets(pos, g.rows, g.cols);
        auto vals = r.chain[1]->decode_values(a, src, pos.size(), rows);
        return std::make_unique<SparseRangeDecoder>(std::move(pos), std::move(vals));
      }
      return std::make_unique<SparseRangeDecoder>(stored_sparse(a, src, prefix, g.n, vt));
    }
    case StageRole::ValueCoder: return first.value_decoder(a, src, g.n, dense_row_offsets(g.rows, g.cols));
    case StageRole::Dense: return std::make_unique<DenseRangeDecoder>(first.decode_dense(a, src, g.rows, g.cols, vt));
    case StageRole::Raw: break;
  }
  a.fail("recipe raw is not decoded by the lossy path");
}

}  // namespace

std::string recipe_unsuitable(const Recipe& r, DType dtype, const std::vector<uint64_t>& shape) {
  if (r.is_raw()) return "";
  if (!dtype_is_float_decodable(dtype)) return "lossy codecs need an F32/F16/BF16 tensor";
  return r.chain[0]->unsuitable(shape);
}

namespace {
// What the chain alone (no cherry) reconstructs, to score against.
std::vector<float> chain_reconstruction(const Recipe& r, const TensorDelta& t) {
  Recipe chain_only = r;
  chain_only.cherry.reset();
  std::vector<float> recon(t.delta.size());
  Encoded first = encode_chain(chain_only, t, t.delta, {}, recon.data());
  if (first.recon_written) return recon;  // the coder knew it while encoding
  return decode_tensor(first.attrs, EncodedSource(first), t.shape, t.dtype, "tensor '" + t.name + "'");
}
}  // namespace

std::string model_scope_key(const Recipe& r) {
  if (r.cherry && r.cherry->scope_model) return r.cherry_text();
  if (!r.chain.empty() && r.chain[0]->model_scope()) return std::string(r.chain[0]->name()) + r.chain[0]->params();
  return "";
}

uint64_t model_scope_budget(const Recipe& r, uint64_t total) {
  if (r.cherry && r.cherry->scope_model) return cherry_count(r.cherry->frac, total);
  return r.chain[0]->model_budget(total);
}

std::vector<float> model_scope_scores(const Recipe& r, const TensorDelta& t) {
  if (r.cherry && r.cherry->scope_model) {
    const Geometry g = geometry(t.shape);
    if (auto enc = cherry_block_encoder(r, t.dtype, g.rows, g.cols)) {  // the fused pass's scores
      std::vector<float> scores(g.n);
      for_each_block(*enc, t.delta, [&](uint64_t first, std::span<const float> b) { enc->stats(first, b); });
      for_each_block(*enc, t.delta, [&](uint64_t first, std::span<const float> b) {
        enc->scores(first, b, t.importance, scores.data() + first);
      });
      return scores;
    }
    return cherry_scores(t.delta, chain_reconstruction(r, t), g.cols, t.importance);
  }
  std::vector<float> mag(t.delta.size());
  for (uint64_t i = 0; i < mag.size(); ++i) mag[i] = std::fabs(t.delta[i]);
  return mag;
}

Encoded encode_tensor(const Recipe& r, const TensorDelta& t) {
  if (!r.cherry) return encode_chain(r, t, t.delta, {});
  const Geometry g = geometry(t.shape);
  const ValueType vt = value_type_for(t.dtype);
  if (auto enc = cherry_block_encoder(r, t.dtype, g.rows, g.cols)) {  // the fused pass's form, over δ in memory
    enc->select_with(t.importance, t.cut);
    Encoded e;
    encode_in_blocks(*enc, t.delta, e);
    e.attrs["recipe"] = r.canonical();
    e.attrs["codec"] = r.codec_names();
    return e;
  }
  // pass 1: what the chain alone reconstructs, to score against
  std::vector<float> recon = chain_reconstruction(r, t);
  std::vector<uint64_t> kept;
  if (r.cherry->scope_model) {
    if (!t.cut) throw std::logic_error("cherry scope=model needs the pipeline's model-wide cut");
    kept = select_by_cut(cherry_scores(t.delta, recon, g.cols, t.importance), *t.cut);
  } else {
    kept = cherry_select(*r.cherry, t.delta, recon, g.rows, g.cols, t.importance);
  }
  // pass 2: refit without the cherries (a dense coder such as lowrank, which takes no skip mask,
  // sees them imputed by pass 1's values)
  std::vector<uint8_t> skip(g.n, 0);
  for (uint64_t p : kept) skip[p] = 1;
  std::vector<float> input;
  std::span<const float> delta = t.delta;
  if (r.chain[0]->role() == StageRole::Dense) {
    input.assign(t.delta.begin(), t.delta.end());
    for (uint64_t p : kept) input[p] = recon[p];
    delta = input;
  }
  Encoded e = encode_chain(r, t, delta, skip);
  e.error_measured = false;
  std::vector<float> vals;
  vals.reserve(kept.size());
  for (uint64_t p : kept) vals.push_back(t.delta[p]);
  add_cherry_parts(e, kept, vals, g.n, vt);
  return e;
}

void add_cherry_parts(Encoded& e, std::span<const uint64_t> kept, std::span<const float> values, uint64_t n,
                      const ValueType& vt) {
  add_positions(e, "cherry", kept, n);
  e.add({"cherry.values", vt.kind, {kept.size()}, store_values(vt, values), vt.encoding});
}

namespace {
// A stored tensor's recipe, checked against its attributes and dtype.
Recipe stored_recipe(const AttrReader& a, DType dtype) {
  Recipe r;
  try {
    r = parse_recipe(a.str("recipe"));
  } catch (const Error& e) {
    a.fail(std::string("attribute 'recipe' is not a valid recipe (") + e.what() + ")");
  }
  if (r.is_raw()) a.fail("recipe raw is not decoded by the lossy path");
  if (a.str("codec") != r.codec_names())
    a.fail("attribute 'codec' \"" + a.str("codec") + "\" does not name its recipe's codecs (\"" + r.codec_names() +
           "\")");
  if (!dtype_is_float_decodable(dtype)) a.fail("a lossy recipe on a non-float tensor");
  return r;
}

bool any_nonfinite(std::span<const float> v) {
  uint32_t nonfinite = 0;  // a branch-free scan that vectorizes
  for (float x : v) nonfinite |= (f32_bits(x) & 0x7f800000u) == 0x7f800000u;
  return nonfinite != 0;
}
}  // namespace

std::unique_ptr<RangeDecoder> load_tensor_decoder(const Json& attrs, const PartSource& src,
                                                  const std::vector<uint64_t>& shape, DType dtype,
                                                  const std::string& where) {
  AttrReader a{attrs, where};
  const Recipe r = stored_recipe(a, dtype);
  const Geometry g = geometry(shape);
  const ValueType vt = value_type_for(dtype);
  std::unique_ptr<RangeDecoder> chain = chain_decoder(r, a, src, g, vt);
  if (!r.cherry) return chain;
  return std::make_unique<CherryRangeDecoder>(std::move(chain), stored_sparse(a, src, "cherry", g.n, vt));
}

void check_decoded_finite(std::span<const float> decoded, const std::string& where) {
  if (any_nonfinite(decoded)) AttrReader{Json::object(), where}.fail("decodes to a non-finite delta");
}

std::vector<float> decode_tensor(const Json& attrs, const PartSource& src, const std::vector<uint64_t>& shape,
                                 DType dtype, const std::string& where) {
  std::unique_ptr<RangeDecoder> d = load_tensor_decoder(attrs, src, shape, dtype, where);
  std::vector<float> out(geometry(shape).n);
  d->decode(0, out.size(), out.data());
  check_decoded_finite(out, where);
  return out;
}

std::unique_ptr<DeltaProduct> load_tensor_product(const Json& attrs, const PartSource& src,
                                                  const std::vector<uint64_t>& shape, DType dtype,
                                                  const std::string& where) {
  AttrReader a{attrs, where};
  const Recipe r = stored_recipe(a, dtype);
  const Geometry g = geometry(shape);
  const ValueType vt = value_type_for(dtype);
  const Stage& first = *r.chain[0];
  std::unique_ptr<DeltaProduct> p;
  switch (first.role()) {
    case StageRole::Sparsifier: {
      const std::string prefix = first.name();
      auto pos = read_positions(a, src, prefix, g.n);
      std::vector<float> vals;
      if (r.chain.size() == 2)
        vals = r.chain[1]->decode_values(a, src, pos.size(), sparse_row_offsets(pos, g.rows, g.cols));
      else
        vals = load_values(vt, src.read(prefix + ".values", vt.kind, {pos.size()}, vt.encoding));
      p = sparse_product(g.rows, g.cols, pos, vals);
      break;
    }
    case StageRole::ValueCoder:
      p = first.value_product(a, src, g.rows, g.cols);
      if (!p) p = dense_product(g.rows, g.cols, first.decode_values(a, src, g.n, dense_row_offsets(g.rows, g.cols)));
      break;
    case StageRole::Dense:
      p = first.dense_product(a, src, g.rows, g.cols, vt);
      if (!p) p = dense_product(g.rows, g.cols, first.decode_dense(a, src, g.rows, g.cols, vt));
      break;
    case StageRole::Raw: a.fail("recipe raw is not decoded by the lossy path");
  }
  if (r.cherry) {
    auto pos = read_positions(a, src, "cherry", g.n);
    auto vals = load_values(vt, src.read("cherry.values", vt.kind, {pos.size()}, vt.encoding));
    p = corrected_product(std::move(p), pos, vals);
  }
  // decode_tensor's check, a row at a time: the product never holds a dense δ̂
  std::vector<float> row(g.cols);
  for (uint64_t i = 0; i < g.rows; ++i) {
    p->decode_row(i, row.data());
    if (any_nonfinite(row)) a.fail("decodes to a non-finite delta");
  }
  return p;
}

double relative_error(std::span<const float> delta, std::span<const float> recon) {
  return error_norms(delta, recon).relative();
}

}  // namespace deltakit
