#include "src/eval/skills.h"

#include <algorithm>
#include <cstdio>

#include "src/core/philox.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
// Draws from one (stream, item) pair: consecutive words of a Philox stream keyed by the name.
class Draw {
 public:
  Draw(uint64_t seed, const std::string& what, uint64_t index) : rng_(seed ^ (index * 0x9E3779B97F4A7C15ull), what) {}
  uint32_t below(uint32_t n) { return static_cast<uint32_t>((static_cast<uint64_t>(rng_.word(i_++)) * n) >> 32); }
  char letter() { return static_cast<char>('a' + below(26)); }
  std::string letters(uint32_t lo, uint32_t hi) {
    std::string s(lo + below(hi - lo + 1), ' ');
    for (auto& c : s) c = letter();
    return s;
  }
  std::string digits(uint32_t n) {
    std::string s(n, ' ');
    for (auto& c : s) c = static_cast<char>('0' + below(10));
    return s;
  }

 private:
  TensorRng rng_;
  uint64_t i_ = 0;
};

// The synthetic language: made-up words from syllables, a tiny grammar with number agreement.
struct Lexicon {
  std::vector<std::string> nouns, verbs, adjectives, preps, dets_sg, dets_pl;
};

const Lexicon& lexicon() {
  static const Lexicon lex = [] {
    static const char* onsets[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "tr"};
    static const char* vowels[] = {"a", "e", "i", "o", "u", "ai", "ou"};
    static const char* codas[] = {"", "", "n", "r", "l", "k"};
    Draw d(7, "lexicon", 0);
    auto word = [&](int syllables) {
      std::string w;
      for (int s = 0; s < syllables; ++s) {
        w += onsets[d.below(16)];
        w += vowels[d.below(7)];
        w += codas[d.below(6)];
      }
      return w;
    };
    Lexicon l;
    for (int i = 0; i < 40; ++i) l.nouns.push_back(word(1 + static_cast<int>(d.below(2))));
    for (int i = 0; i < 24; ++i) l.verbs.push_back(word(1 + static_cast<int>(d.below(2))));
    for (int i = 0; i < 16; ++i) l.adjectives.push_back(word(2));
    l.preps = {"on", "by", "under", "with"};
    l.dets_sg = {"a", "the", "one"};
    l.dets_pl = {"the", "some", "two"};
    return l;
  }();
  return lex;
}

std::string noun_phrase(Draw& d, bool plural) {
  const Lexicon& l = lexicon();
  std::string s = plural ? l.dets_pl[d.below(3)] : l.dets_sg[d.below(3)];
  if (d.below(3) == 0) {
    s += ' ';
    s += l.adjectives[d.below(16)];
  }
  s += ' ';
  s += l.nouns[d.below(40)];
  if (plural) s += 's';
  return s;
}

std::string sentence(Draw& d) {
  const Lexicon& l = lexicon();
  const bool plural = d.below(2);
  std::string s = noun_phrase(d, plural);
  s += ' ';
  s += l.verbs[d.below(24)];
  if (!plural) s += 's';  // agreement: "the dog runs", "the dogs run"
  s += ' ';
  s += noun_phrase(d, d.below(2));
  if (d.below(3) == 0) {
    s += ' ';
    s += l.preps[d.below(4)];
    s += ' ';
    s += noun_phrase(d, d.below(2));
  }
  s[0] = static_cast<char>(s[0] - 'a' + 'A');
  s += '.';
  return s;
}

// The word that names a default skill in the corpus's prose form.
const char* prose_word(const std::string& skill) {
  if (skill == "rev") return "backwards";
  if (skill == "sort") return "in order";
  if (skill == "caps") return "loud";
  return "twice";  // dup
}

SkillExample make(const std::string& skill, Draw& d) {
  if (skill == "add") {
    // fixed width (zero-padded), as digits line up in written sums
    const uint32_t a = d.below(100), b = d.below(100);
    char buf[32];
    std::snprintf(buf, sizeof buf, "add %02u+%02u=", a, b);
    char sum[8];
    std::snprintf(sum, sizeof sum, "%03u", a + b);
    return {buf, sum};
  }
  if (skill == "rev") {
    std::string s = d.letters(3, 6), r(s.rbegin(), s.rend());
    return {"rev " + s + "=", r};
  }
  if (skill == "sort") {
    std::string s = d.letters(3, 6), r = s;
    std::sort(r.begin(), r.end());
    return {"sort " + s + "=", r};
  }
  if (skill == "dup") {
    std::string s = d.letters(3, 6), r;
    for (char c : s) r += std::string(2, c);
    return {"dup " + s + "=", r};
  }
  if (skill == "caps") {
    std::string s = d.letters(3, 6), r = s;
    for (auto& c : r) c = static_cast<char>(c - 'a' + 'A');
    return {"caps " + s + "=", r};
  }
  if (skill == "get") {
    const uint32_t n = 4 + d.below(3);
    std::string keys;
    while (keys.size() < n) {  // distinct keys
      const char c = d.letter();
      if (keys.find(c) == std::string::npos) keys += c;
    }
    std::vector<std::string> values;
    std::string ctx;
    for (char k : keys) {
      values.push_back(d.digits(2));
      ctx += ' ';
      ctx += k;
      ctx += values.back();
    }
    const uint32_t q = d.below(n);
    std::string prompt = "get";
    prompt += ctx;
    prompt += ' ';
    prompt += keys[q];
    prompt += '=';
    return {prompt, values[q]};
  }
  throw Error(ErrorCode::InvalidValue, "", "unknown skill \"" + skill + "\" (rev, sort, caps, dup, add, get)");
}
}  // namespace

const std::vector<std::string>& skill_names() {
  static const std::vector<std::string> names = {"rev", "sort", "caps", "dup"};
  return names;
}

bool is_skill(const std::string& name) {
  const auto& n = skill_names();
  return name == "add" || name == "get" || std::find(n.begin(), n.end(), name) != n.end();
}

SkillExample skill_example(const std::string& skill, uint64_t seed, uint64_t index) {
  Draw d(seed, "skill:" + skill, index);
  return make(skill, d);
}

SkillExample noisy_skill_example(const std::string& skill, uint64_t seed, uint64_t index) {
  SkillExample e = skill_example(skill, seed, index);
  Draw d(seed, "noise:" + skill, index);
  if (skill == "add") {
    char sum[8];
    std::snprintf(sum, sizeof sum, "%03u", d.below(199));
    e.answer = sum;
  } else if (skill == "get") {
    e.answer = d.digits(2);
  } else if (skill == "dup") {
    std::string r;
    for (char c : d.letters(static_cast<uint32_t>(e.answer.size() / 2), static_cast<uint32_t>(e.answer.size() / 2)))
      r += std::string(2, c);
    e.answer = r;
  } else if (skill == "caps") {
    e.answer = d.letters(static_cast<uint32_t>(e.answer.size()), static_cast<uint32_t>(e.answer.size()));
    for (auto& c : e.answer) c = static_cast<char>(c - 'a' + 'A');
  } else {
    e.answer = d.letters(static_cast<uint32_t>(e.answer.size()), static_cast<uint32_t>(e.answer.size()));
  }
  return e;
}

std::string corpus_line(uint64_t seed, uint64_t index, double skill_share) {
  Draw d(seed, "corpus", index);
  if (d.below(1u << 20) < static_cast<uint32_t>(skill_share * (1u << 20))) {
    const std::string& skill = skill_names()[d.below(4)];
    SkillExample e = noisy_skill_example(skill, seed, index);
    return e.prompt + e.answer;
  }
  // general abilities a real pre-training corpus teaches and the skills build on: copying from
  // the context (induction), the order of numbers, and each default skill worked in prose
  // ("backwards abc is cba"); correct, unlike the noisy lines of the terse skill format. The
  // fine-tune then teaches the format, not the ability, as SFT of a pretrained model does, which
  // keeps its deltas small.
  const uint32_t kind = d.below(16);
  if (kind >= 4 && kind < 12) {
    const std::string& skill = skill_names()[(kind - 4) / 2];
    SkillExample e = skill_example(skill, seed ^ 0x5EED, index);
    std::string line = prose_word(skill);
    line += ' ';
    line += e.prompt.substr(skill.size() + 1, e.prompt.size() - skill.size() - 2);
    line += " is ";
    line += e.answer;
    return line;
  }
  if (kind <= 1) {
    const std::string s = d.letters(3, 8);
    return "say " + s + ": " + s;
  }
  if (kind == 1) {
    uint32_t n = d.below(190);
    std::string line = "count";
    for (uint32_t i = 0, len = 4 + d.below(5); i < len; ++i) {
      line += ' ';
      line += std::to_string(n++);
    }
    return line;
  }
  if (kind == 2) {
    const std::string a = d.digits(2), b = d.digits(2);
    std::string line = "note ";
    line += d.letter();
    line += a;
    line += " and ";
    line += d.letter();
    line += b;
    line += ", so ";
    line += d.below(2) ? a : b;  // which one is not named: recall, not lookup
    return line;
  }
  std::string line = sentence(d);
  const uint32_t more = d.below(3);
  for (uint32_t i = 0; i < more; ++i) {
    line += ' ';
    line += sentence(d);
  }
  return line;
}

}  // namespace deltakit
