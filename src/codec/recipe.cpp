#include "src/codec/recipe.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <map>

#include "src/core/error.h"

namespace deltakit {

const char* stage_name(StageKind k) {
  switch (k) {
    case StageKind::Raw: return "raw";
    case StageKind::Dare: return "dare";
    case StageKind::Topk: return "topk";
    case StageKind::BitDelta: return "bitdelta";
    case StageKind::Quant: return "quant";
    case StageKind::Lowrank: return "lowrank";
  }
  return "?";
}

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(trim(s.substr(start, p == std::string::npos ? std::string::npos : p - start)));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

std::string num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

class StageParser {
 public:
  StageParser(std::string text, std::string stage) : text_(std::move(text)), stage_(std::move(stage)) {}
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::Usage, "", "recipe \"" + text_ + "\": " + stage_ + ": " + what);
  }
  void load(const std::string& params) {
    if (params.empty()) return;
    for (const auto& kv : split(params, ',')) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos) fail("parameter \"" + kv + "\" is not key=value");
      std::string k = trim(kv.substr(0, eq)), v = trim(kv.substr(eq + 1));
      if (k.empty() || v.empty()) fail("parameter \"" + kv + "\" is not key=value");
      if (!kv_.emplace(k, v).second) fail("parameter \"" + k + "\" given twice");
    }
  }
  bool has(const std::string& k) const { return kv_.count(k) != 0; }
  std::string take(const std::string& k, const std::string& dflt) {
    auto it = kv_.find(k);
    if (it == kv_.end()) return dflt;
    std::string v = it->second;
    kv_.erase(it);
    return v;
  }
  double real(const std::string& k, double dflt, double lo, double hi, bool lo_open = false) {
    std::string v = take(k, "");
    if (v.empty()) return dflt;
    return parse_real(k, v, lo, hi, lo_open);
  }
  double parse_real(const std::string& k, const std::string& v, double lo, double hi, bool lo_open) {
    double d = 0;
    auto r = std::from_chars(v.data(), v.data() + v.size(), d);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || !std::isfinite(d))
      fail(k + "=" + v + " is not a number");
    if (d < lo || d > hi || (lo_open && d == lo))
      fail(k + "=" + v + " is out of range " + (lo_open ? "(" : "[") + num(lo) + ", " + num(hi) + "]");
    return d;
  }
  uint64_t integer(const std::string& k, uint64_t dflt, uint64_t lo, uint64_t hi) {
    std::string v = take(k, "");
    if (v.empty()) return dflt;
    return parse_int(k, v, lo, hi);
  }
  uint64_t parse_int(const std::string& k, const std::string& v, uint64_t lo, uint64_t hi) {
    uint64_t x = 0;
    auto r = std::from_chars(v.data(), v.data() + v.size(), x);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size()) fail(k + "=" + v + " is not a non-negative integer");
    if (x < lo || x > hi) fail(k + "=" + v + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
  }
  // scope=[tensor]|model: whose budget a topk/cherry stage spends
  bool scope() {
    std::string v = take("scope", "tensor");
    if (v != "tensor" && v != "model") fail("scope=" + v + " is not tensor or model");
    return v == "model";
  }
  void finish() const {
    if (!kv_.empty()) fail("unknown parameter \"" + kv_.begin()->first + "\"");
  }

 private:
  std::string text_, stage_;
  std::map<std::string, std::string> kv_;
};

Stage parse_stage(const std::string& text, const std::string& spec, uint64_t seed, CherryParams* cherry) {
  size_t colon = spec.find(':');
  std::string name = trim(spec.substr(0, colon));
  std::string params = colon == std::string::npos ? "" : spec.substr(colon + 1);
  StageParser p(text, name.empty() ? "(empty stage)" : name);
  if (name.empty()) p.fail("a stage has no codec name");
  p.load(params);
  Stage s;
  if (name == "raw") {
    s.kind = StageKind::Raw;
  } else if (name == "dare") {
    s.kind = StageKind::Dare;
    s.dare.p = p.real("p", 0.9, 0.0, 1.0);
    std::string r = p.take("rescale", "auto");
    if (r == "auto") {
      s.dare.rescale_auto = true;
    } else if (r == "none") {
      s.dare.rescale_auto = false, s.dare.rescale = 1.0;
    } else {
      s.dare.rescale_auto = false;
      s.dare.rescale = p.parse_real("rescale", r, 0.0, 1e6, true);
    }
    s.dare.seed = p.integer("seed", seed, 0, UINT64_MAX);
  } else if (name == "topk") {
    s.kind = StageKind::Topk;
    s.topk.density = p.real("density", 0.1, 0.0, 1.0);
    s.topk.scope_model = p.scope();
  } else if (name == "bitdelta") {
    s.kind = StageKind::BitDelta;
    std::string sc = p.take("scale", "matrix");
    if (sc == "matrix") {
      s.bitdelta.scale = ScaleUnit::Matrix;
    } else if (sc == "row") {
      s.bitdelta.scale = ScaleUnit::Row;
    } else if (sc.rfind("group:", 0) == 0) {
      s.bitdelta.scale = ScaleUnit::Group;
      s.bitdelta.group = p.parse_int("scale=group:G, G", sc.substr(6), 1, uint64_t{1} << 40);
    } else {
      p.fail("scale=" + sc + " is not matrix, row or group:G");
    }
    s.bitdelta.levels = static_cast<unsigned>(p.integer("levels", 1, 1, 256));
    if (!std::has_single_bit(s.bitdelta.levels)) p.fail("levels must be a power of two (1, 2, 4, ..., 256)");
  } else if (name == "quant") {
    s.kind = StageKind::Quant;
    s.quant.bits = static_cast<unsigned>(p.integer("bits", 4, 2, 8));
    if (s.quant.bits != 2 && s.quant.bits != 3 && s.quant.bits != 4 && s.quant.bits != 8)
      p.fail("bits must be 2, 3, 4 or 8");
    s.quant.group = p.integer("group", 128, 1, uint64_t{1} << 40);
  } else if (name == "lowrank") {
    s.kind = StageKind::Lowrank;
    if (p.has("rank") == p.has("energy")) p.fail("give exactly one of rank=R or energy=E");
    s.lowrank.rank = p.integer("rank", 0, 1, uint64_t{1} << 31);
    s.lowrank.energy = p.real("energy", 0.0, 0.0, 1.0, true);
    s.lowrank.seed = p.integer("seed", seed, 0, UINT64_MAX);
  } else if (name == "cherry") {
    if (!cherry) p.fail("cherry is a modifier: write it last, after \"+\"");
    cherry->frac = p.real("frac", 0.01, 0.0, 1.0, true);
    const bool per_given = p.has("per");
    std::string per = p.take("per", "row");
    if (per != "row" && per != "tensor") p.fail("per=" + per + " is not row or tensor");
    cherry->per_row = per == "row";
    cherry->scope_model = p.scope();
    if (cherry->scope_model && per_given) p.fail("per= and scope=model conflict: scope=model is one budget for the model");
    if (cherry->scope_model) cherry->per_row = false;
    std::string imp = p.take("importance", "magnitude");
    if (imp == "magnitude") {
      cherry->importance = imp;
    } else if (imp.rfind("fisher:", 0) == 0 || imp.rfind("act:", 0) == 0) {
      size_t c = imp.find(':');
      cherry->importance = imp.substr(0, c);
      cherry->file = imp.substr(c + 1);
      if (cherry->file.empty()) p.fail("importance=" + imp + " names no file");
    } else {
      p.fail("importance=" + imp + " is not magnitude, fisher:FILE or act:FILE");
    }
  } else {
    p.fail("unknown codec (known: raw, dare, topk, bitdelta, quant, lowrank, cherry)");
  }
  p.finish();
  return s;
}

}  // namespace

Recipe parse_recipe(const std::string& text, uint64_t seed) {
  auto fail = [&](const std::string& what) { throw Error(ErrorCode::Usage, "", "recipe \"" + text + "\": " + what); };
  auto plus = split(text, '+');
  if (plus.size() > 2) fail("at most one \"+ cherry\" modifier");
  Recipe r;
  for (const auto& spec : split(plus[0], '>')) {
    if (spec.rfind("cherry", 0) == 0) fail("cherry is a modifier: write it last, after \"+\"");
    r.chain.push_back(parse_stage(text, spec, seed, nullptr));
  }
  if (plus.size() == 2) {
    CherryParams c;
    std::string spec = plus[1];
    if (spec.rfind("cherry", 0) != 0 || (spec.size() > 6 && spec[6] != ':'))
      fail("only cherry can follow \"+\", not \"" + spec + "\"");
    parse_stage(text, spec, seed, &c);
    r.cherry = c;
  }
  const auto& ch = r.chain;
  if (ch.size() > 2) fail("a chain has at most two stages: a sparsifier, then a value coder");
  for (const auto& s : ch)
    if ((s.kind == StageKind::Raw || s.kind == StageKind::Lowrank) && ch.size() > 1)
      fail(std::string(stage_name(s.kind)) + " stands alone and cannot be chained");
  if (ch.size() == 2) {
    if (!ch[0].sparsifier()) fail(std::string(stage_name(ch[0].kind)) + " cannot come first in a chain (only dare or topk)");
    if (!ch[1].value_coder()) fail(std::string(stage_name(ch[1].kind)) + " cannot code a sparsifier's values (only bitdelta or quant)");
  }
  if (r.cherry && r.is_raw()) fail("raw is exact; cherry has nothing to keep");
  if (r.cherry && !ch.empty() && ch[0].kind == StageKind::Topk && ch[0].topk.scope_model)
    fail("topk scope=model cannot be combined with cherry (the refit would change the model-wide budget)");
  if (r.cherry && r.cherry->scope_model && !ch.empty() && ch[0].kind == StageKind::Topk && ch[0].topk.scope_model)
    fail("only one scope=model budget per recipe");
  return r;
}

std::string Recipe::canonical() const {
  std::string out;
  for (size_t i = 0; i < chain.size(); ++i) {
    const Stage& s = chain[i];
    if (i) out += " > ";
    out += stage_name(s.kind);
    switch (s.kind) {
      case StageKind::Raw: break;
      case StageKind::Dare:
        out += ":p=" + num(s.dare.p) + ",rescale=" + (s.dare.rescale_auto ? std::string("auto") : num(s.dare.rescale)) +
               ",seed=" + std::to_string(s.dare.seed);
        break;
      case StageKind::Topk:
        out += ":density=" + num(s.topk.density);
        if (s.topk.scope_model) out += ",scope=model";
        break;
      case StageKind::BitDelta:
        out += ":scale=";
        out += s.bitdelta.scale == ScaleUnit::Group ? "group:" + std::to_string(s.bitdelta.group)
                                                    : std::string(scale_unit_name(s.bitdelta.scale));
        out += ",levels=" + std::to_string(s.bitdelta.levels);
        break;
      case StageKind::Quant:
        out += ":bits=" + std::to_string(s.quant.bits) + ",group=" + std::to_string(s.quant.group);
        break;
      case StageKind::Lowrank:
        out += s.lowrank.rank ? ":rank=" + std::to_string(s.lowrank.rank) : ":energy=" + num(s.lowrank.energy);
        out += ",seed=" + std::to_string(s.lowrank.seed);
        break;
    }
  }
  if (cherry) {
    out += " + cherry:frac=" + num(cherry->frac);
    out += cherry->scope_model ? std::string(",scope=model") : std::string(",per=") + (cherry->per_row ? "row" : "tensor");
    out += ",importance=";
    out += cherry->importance;
    if (!cherry->file.empty()) out += ":" + cherry->file;
  }
  return out;
}

std::string Recipe::codec_names() const {
  std::string out;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (i) out += ">";
    out += stage_name(chain[i].kind);
  }
  if (cherry) out += "+cherry";
  return out;
}

}  // namespace deltakit
