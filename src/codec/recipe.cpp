#include "src/codec/recipe.h"

#include "src/core/error.h"

namespace deltakit {

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

// "dare or topk": the registered stages of a role, for error messages
std::string names_of(StageRole role) {
  std::string out;
  for (const auto& e : stage_registry())
    if (e.role == role) out += (out.empty() ? "" : " or ") + std::string(e.name);
  return out;
}

void parse_cherry(StageArgs& p, CherryParams& cherry) {
  cherry.frac = p.real("frac", 0.01, 0.0, 1.0, true);
  const bool per_given = p.has("per");
  std::string per = p.take("per", "row");
  if (per != "row" && per != "tensor") p.fail("per=" + per + " is not row or tensor");
  cherry.per_row = per == "row";
  cherry.scope_model = p.scope();
  if (cherry.scope_model && per_given) p.fail("per= and scope=model conflict: scope=model is one budget for the model");
  if (cherry.scope_model) cherry.per_row = false;
  std::string imp = p.take("importance", "magnitude");
  if (imp == "magnitude") {
    cherry.importance = imp;
  } else if (imp.rfind("fisher:", 0) == 0 || imp.rfind("act:", 0) == 0) {
    size_t c = imp.find(':');
    cherry.importance = imp.substr(0, c);
    cherry.file = imp.substr(c + 1);
    if (cherry.file.empty()) p.fail("importance=" + imp + " names no file");
  } else {
    p.fail("importance=" + imp + " is not magnitude, fisher:FILE or act:FILE");
  }
}

// One stage by its registered name, or (with `cherry`) the modifier.
std::shared_ptr<const Stage> parse_stage(const std::string& text, const std::string& spec, uint64_t seed,
                                         CherryParams* cherry) {
  size_t colon = spec.find(':');
  std::string name = trim(spec.substr(0, colon));
  std::string params = colon == std::string::npos ? "" : spec.substr(colon + 1);
  StageArgs p(text, name.empty() ? "(empty stage)" : name);
  if (name.empty()) p.fail("a stage has no codec name");
  p.load(params);
  std::shared_ptr<const Stage> stage;
  if (name == "cherry") {
    if (!cherry) p.fail("cherry is a modifier: write it last, after \"+\"");
    parse_cherry(p, *cherry);
  } else {
    std::string known;
    for (const auto& e : stage_registry()) {
      known += std::string(e.name) + ", ";
      if (name == e.name) stage = e.make(p, seed);
    }
    if (!stage) p.fail("unknown codec (known: " + known + "cherry)");
  }
  p.finish();
  return stage;
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
    if ((s->role() == StageRole::Raw || s->role() == StageRole::Dense) && ch.size() > 1)
      fail(std::string(s->name()) + " stands alone and cannot be chained");
  if (ch.size() == 2) {
    if (ch[0]->role() != StageRole::Sparsifier)
      fail(std::string(ch[0]->name()) + " cannot come first in a chain (only " + names_of(StageRole::Sparsifier) + ")");
    if (ch[1]->role() != StageRole::ValueCoder)
      fail(std::string(ch[1]->name()) + " cannot code a sparsifier's values (only " + names_of(StageRole::ValueCoder) +
           ")");
  }
  if (r.cherry && r.is_raw()) fail("raw is exact; cherry has nothing to keep");
  if (r.cherry && !ch.empty() && ch[0]->model_scope())
    fail("topk scope=model cannot be combined with cherry (the refit would change the model-wide budget)");
  return r;
}

std::string Recipe::cherry_text() const {
  if (!cherry) return "";
  std::string out = "cherry:frac=" + recipe_number(cherry->frac);
  out +=
      cherry->scope_model ? std::string(",scope=model") : std::string(",per=") + (cherry->per_row ? "row" : "tensor");
  out += ",importance=";
  out += cherry->importance;
  if (!cherry->file.empty()) out += ":" + cherry->file;
  return out;
}

std::string Recipe::canonical() const {
  std::string out;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (i) out += " > ";
    out += chain[i]->name();
    out += chain[i]->params();
  }
  if (cherry) out += " + " + cherry_text();
  return out;
}

std::string Recipe::codec_names() const {
  std::string out;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (i) out += ">";
    out += chain[i]->name();
  }
  if (cherry) out += "+cherry";
  return out;
}

}  // namespace deltakit
