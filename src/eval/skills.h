// The embedded data: a synthetic base language and four fine-tuning skills, all generated from
// the counter RNG, so example i of a stream is the same on any machine and nothing is stored.
//
//   rev   "rev kxqa=" -> "aqxk"              3-6 lowercase letters reversed
//   sort  "sort dbca=" -> "abcd"             3-6 lowercase letters sorted
//   caps  "caps kxqa=" -> "KXQA"              3-6 lowercase letters in capitals
//   dup   "dup kxq=" -> "kkxxqq"              3-6 letters, each doubled
// and two harder ones, not among the default four because the small presets do not learn them
// within SFT budgets (see the README):
//   add   "add 47+05=" -> "052"              two 2-digit numbers, zero-padded
//   get   "get a37 b71 c12 d05 c=" -> "12"   the value of a key among 4-6 pairs (associative recall)
//
// Every example is one line: <bos> prompt answer "\n"; exact match compares the greedy answer
// up to the newline. The base corpus is lines of the synthetic language with a few skill lines
// whose answers are random strings of the right kind: the base learns the formats, not the skills.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deltakit {

struct SkillExample {
  std::string prompt, answer;
};

const std::vector<std::string>& skill_names();  // the default four: rev, sort, caps, dup
bool is_skill(const std::string& name);
// Example `index` of `skill` in stream `seed` (training and evaluation use different seeds).
SkillExample skill_example(const std::string& skill, uint64_t seed, uint64_t index);
// The same prompt with a random answer of the right form (the base corpus's noisy examples).
SkillExample noisy_skill_example(const std::string& skill, uint64_t seed, uint64_t index);
// Line `index` of the base corpus: mostly synthetic-language sentences, some lines that teach
// copying and counting, and a share of noisy skill lines.
std::string corpus_line(uint64_t seed, uint64_t index, double skill_share);

// The RNG streams: training data and held-out evaluation never share one.
constexpr uint64_t kTrainStream = 1, kEvalStream = 0xE7A1;

}  // namespace deltakit
