#include "cli/symbols.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace evo::cli {
namespace {

// Removes every occurrence of `what` from `s`.
void erase_all(std::string* s, const char* what) {
  size_t n = std::strlen(what);
  for (size_t at = s->find(what); at != std::string::npos; at = s->find(what, at)) s->erase(at, n);
}

// Drops a trailing "(parameters)" (and " const"): the balanced parenthesis
// group that ends the name.
void drop_parameters(std::string* s) {
  if (s->size() > 6 && s->compare(s->size() - 6, 6, " const") == 0) s->resize(s->size() - 6);
  if (s->empty() || s->back() != ')') return;
  int depth = 0;
  for (size_t i = s->size(); i-- > 0;) {
    if ((*s)[i] == ')') ++depth;
    if ((*s)[i] == '(' && --depth == 0) {
      if (i > 0) s->resize(i);
      return;
    }
  }
}

// A read-only mapping of a whole file, unmapped with it.
struct MappedFile {
  void* data = MAP_FAILED;
  size_t size = 0;
  explicit MappedFile(const char* path) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      size = static_cast<size_t>(st.st_size);
      data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data != MAP_FAILED) ::munmap(data, size);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  [[nodiscard]] const char* bytes() const { return static_cast<const char*>(data); }
  [[nodiscard]] bool ok() const { return data != MAP_FAILED && size >= sizeof(Elf64_Ehdr); }
};

// Calls fn(symbol, names) for the .symtab of an ELF64 image, if it has one.
template <typename Fn>
void each_function_symbol(const MappedFile& f, Fn&& fn) {
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(f.bytes());
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) return;
  if (eh->e_shoff == 0 || eh->e_shoff + eh->e_shnum * sizeof(Elf64_Shdr) > f.size) return;
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(f.bytes() + eh->e_shoff);
  for (unsigned i = 0; i < eh->e_shnum; ++i) {
    const Elf64_Shdr& sh = sections[i];
    if (sh.sh_type != SHT_SYMTAB || sh.sh_link >= eh->e_shnum) continue;
    const Elf64_Shdr& strtab = sections[sh.sh_link];
    if (sh.sh_offset + sh.sh_size > f.size || strtab.sh_offset + strtab.sh_size > f.size) return;
    const auto* syms = reinterpret_cast<const Elf64_Sym*>(f.bytes() + sh.sh_offset);
    const char* names = f.bytes() + strtab.sh_offset;
    for (size_t k = 0; k < sh.sh_size / sizeof(Elf64_Sym); ++k) {
      if (ELF64_ST_TYPE(syms[k].st_info) != STT_FUNC || syms[k].st_size == 0) continue;
      if (syms[k].st_name >= strtab.sh_size) continue;
      fn(syms[k], names + syms[k].st_name);
    }
  }
}

}  // namespace

std::string short_symbol(const char* mangled) {
  int status = -1;
  std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  if (status != 0 || demangled == nullptr) return mangled;
  std::string s = demangled.get();
  erase_all(&s, "(anonymous namespace)::");
  const std::string kString =
      "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >";
  for (size_t at = s.find(kString); at != std::string::npos; at = s.find(kString, at))
    s.replace(at, kString.size(), "std::string");
  drop_parameters(&s);
  return s;
}

void Symbols::load_executable() {
  loaded_ = true;
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&short_symbol), &self) == 0) return;
  exe_base_ = reinterpret_cast<uintptr_t>(self.dli_fbase);
  MappedFile f("/proc/self/exe");
  if (!f.ok()) return;
  // A position-independent evo's symbols are offsets from where it was
  // loaded; a fixed-address one's (-no-pie, the default) are addresses.
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(f.bytes());
  uintptr_t bias = eh->e_type == ET_DYN ? exe_base_ : 0;
  each_function_symbol(f, [&](const Elf64_Sym& s, const char* name) {
    exe_.push_back({bias + s.st_value, bias + s.st_value + s.st_size, short_symbol(name)});
  });
  std::sort(exe_.begin(), exe_.end(), [](const Entry& a, const Entry& b) { return a.start < b.start; });
}

const Symbols::Entry* Symbols::find_in_executable(uintptr_t pc) const {
  auto it =
      std::upper_bound(exe_.begin(), exe_.end(), pc, [](uintptr_t v, const Entry& e) { return v < e.start; });
  if (it == exe_.begin()) return nullptr;
  --it;
  return pc < it->end ? &*it : nullptr;
}

const std::string& Symbols::name(uintptr_t pc) {
  auto cached = cache_.find(pc);
  if (cached != cache_.end()) return cached->second;
  if (!loaded_) load_executable();
  std::string out;
  Dl_info info{};
  void* entry = nullptr;  // the ElfW(Sym) of the nearest dynamic symbol
  // pc is a sampled or printed address, never dereferenced: dladdr1 only
  // looks it up, so the cast costs no optimisation.
  // NOLINTNEXTLINE(performance-no-int-to-ptr): dladdr1 takes the address as a pointer
  if (dladdr1(reinterpret_cast<void*>(pc), &info, &entry, RTLD_DL_SYMENT) != 0) {
    const auto* sym = static_cast<const ElfW(Sym)*>(entry);
    auto start = reinterpret_cast<uintptr_t>(info.dli_saddr);
    if (info.dli_sname != nullptr && sym != nullptr && pc >= start && pc < start + sym->st_size) {
      out = short_symbol(info.dli_sname);
    } else if (const Entry* e = reinterpret_cast<uintptr_t>(info.dli_fbase) == exe_base_
                                    ? find_in_executable(pc)
                                    : nullptr) {
      out = e->name;
    } else if (info.dli_fname != nullptr) {
      // A library's internal function (no symbol left after stripping): the
      // library's name. Offsets would split one function into many frames.
      const char* slash = std::strrchr(info.dli_fname, '/');
      out = slash != nullptr ? slash + 1 : info.dli_fname;
    }
  }
  return cache_.emplace(pc, std::move(out)).first->second;
}

}  // namespace evo::cli
