// deltakit: one binary, git-style subcommands. Every error ends here as one line on stderr
// naming the file and the problem, with exit code 1 (2 for bad usage).
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>

#include "apps/cli_common.h"
#include "formats/h5_support.h"
#include "mpi/mpi_info.h"
#include "src/core/allocator.h"
#include "src/core/collective.h"
#include "src/core/error.h"
#include "src/core/mapped_file.h"
#include "src/model/kernels.h"

namespace {
struct Command {
  int (*run)(const deltakit::cli::Args&);
  const char* summary;
};

const std::map<std::string, Command>& commands() {
  using namespace deltakit::cli;
  static const std::map<std::string, Command> c = {
      {"inspect", {cmd_inspect, "list the tensors of a checkpoint or an adapter"}},
      {"diff", {cmd_diff, "per-tensor statistics of fine-tune minus base"}},
      {"compress", {cmd_compress, "turn a fine-tune's delta into an adapter file"}},
      {"apply", {cmd_apply, "add an adapter to its base, writing a checkpoint"}},
      {"export-lora", {cmd_export_lora, "write a delta as a PEFT LoRA adapter (SVD per matrix)"}},
      {"merge", {cmd_merge, "merge fine-tunes or adapters by a mergekit-style YAML config"}},
      {"demo", {cmd_demo, "train the embedded models, compress and apply their deltas, print one table"}},
      {"train", {cmd_train, "train a base model on the embedded synthetic corpus"}},
      {"finetune", {cmd_finetune, "fine-tune a model on a skill or a text"}},
      {"eval", {cmd_eval, "perplexity and skill accuracy of a model"}},
      {"importance", {cmd_importance, "Fisher or activation importance of the weights, for the cherry codec"}},
      {"plan", {cmd_plan, "choose a recipe per tensor family by measured damage under a size budget"}},
      {"serve",
       {cmd_serve, "serve the base and many adapters over HTTP (OpenAI-compatible), computing with compressed deltas"}},
      {"riemann", {cmd_riemann, "loss change of delta edits and its Riemann-sum estimates (algorithms.md §4)"}},
      {"generate", {cmd_generate, "greedy text generation"}},
      {"tokenize", {cmd_tokenize, "a text file as the uint32 token file --tokens, tokens:FILE and calibration take"}},
      {"import-llama2c", {cmd_import_llama2c, "convert a llama2.c checkpoint to a Hugging Face folder"}},
      {"make-fixture", {cmd_make_fixture, "write a Llama-shaped base + fine-tune pair for tests"}},
  };
  return c;
}

void usage(std::ostream& os) {
  os << "usage: deltakit <command> [options]   (deltakit <command> --help for its options)\n\n";
  for (const auto& [name, c] : commands())
    os << "  " << name << std::string(14 - name.size(), ' ') << c.summary << "\n";
  os << "  version       print versions\n";
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  deltakit::keep_freed_memory();
  // the heap's first GiBs on huge pages (src/core/allocator.h): address space, not memory
  deltakit::huge_page_heap(std::min<size_t>(
      size_t{4} << 30, static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE)) / 2));
  // OpenBLAS on one thread inside our own splits, for every command: LAPACK's SVD (the lowrank
  // codec, export-lora) rounds differently with another BLAS thread count, and a job's bytes
  // must not depend on how many ranks share a node
  deltakit::kernels::set_threads(0);
  std::string name = argv[1];
  if (name == "version" || name == "--version") {
    std::cout << "deltakit " << DELTAKIT_VERSION << " (" << deltakit::mpi_library_version() << ")\n";
    return 0;
  }
  auto it = commands().find(name);
  if (it == commands().end()) {
    std::cerr << "deltakit: error: unknown command \"" << name << "\"\n";
    usage(std::cerr);
    return 2;
  }
  // Jobs run on every rank an MPI launcher started; other commands are always one process.
  const bool job = name == "compress" || name == "apply" || name == "merge" || name == "export-lora";
  // HDF5 first: initialised before MPI, it shuts down at exit like a serial program instead of
  // from inside MPI_Finalize (where a file left open by a failed write, e.g. a full disk, crashes
  // HDF5 1.10's teardown)
  deltakit::h5_setup();
  std::unique_ptr<deltakit::Comm> comm =
      job ? deltakit::make_world_comm(&argc, &argv) : std::make_unique<deltakit::SerialComm>();
  deltakit::cli::set_world(comm.get());
  const std::string label = "deltakit " + name;
  deltakit::set_error_label(label);
  const bool root = comm->is_root();
  deltakit::cli::Args args(argv + 2, argv + argc);
  try {
    const int rc = it->second.run(args);
    // a report printed from an input truncated while read (read as zeros) is not a result
    if (rc == 0) deltakit::check_mapped_inputs_intact();
    return rc;
  } catch (const deltakit::AgreedError& e) {
    // every rank has it: rank 0 says it once, every rank exits cleanly
    if (root) deltakit::print_error_line(label + ": error: " + e.what());
    return e.code() == deltakit::ErrorCode::Usage || e.code() == deltakit::ErrorCode::InvalidValue ? 2 : 1;
  } catch (const deltakit::Error& e) {
    // from the arguments (or a value they set, found below): the same on every rank
    if (e.code() == deltakit::ErrorCode::Usage || e.code() == deltakit::ErrorCode::InvalidValue) {
      if (root) deltakit::print_error_line(label + ": error: " + e.what());
      return 2;
    }
    if (comm->size() > 1) deltakit::abort_job(*comm, e);  // this rank alone: Error::one
    deltakit::print_error_line(label + ": error: " + e.what());
    return 1;
  } catch (const boost::program_options::error& e) {
    if (root) deltakit::print_error_line(label + ": error: " + e.what() + " (see " + label + " --help)");
    return 2;
  } catch (const std::bad_alloc&) {
    deltakit::print_error_line(label + ": error: out of memory");
    return 1;
  } catch (const std::exception& e) {
    deltakit::print_error_line(label + ": internal error: " + e.what());
    return 3;
  }
}
