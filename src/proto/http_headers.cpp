#include "proto/http_headers.h"

#include "proto/http_response.h"

namespace evo::http {

const std::string* find_header(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

const char* HeaderCollector::name_piece(HeaderList& headers, const char* at, size_t len, size_t max_headers) {
  if (in_value_ || headers.empty()) {
    if (headers.size() >= max_headers) return "too many headers";
    headers.emplace_back();
    in_value_ = false;
  }
  std::string& name = headers.back().first;
  size_t from = name.size();
  name.append(at, len);
  for (size_t i = from; i < name.size(); ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (!is_token_char(c)) return "invalid character in a header name";
    if (c >= 'A' && c <= 'Z') name[i] = static_cast<char>(c + ('a' - 'A'));
  }
  return nullptr;
}

const char* HeaderCollector::value_piece(HeaderList& headers, uint64_t offset, const char* at, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    auto c = static_cast<unsigned char>(at[i]);
    if (c == 0 || c == '\r' || c == '\n') return "invalid character in a header value";
  }
  if (in_value_ && offset != value_end_) return "obsolete line folding";
  value_end_ = offset + len;
  in_value_ = true;
  if (headers.empty()) headers.emplace_back();
  headers.back().second.append(at, len);
  return nullptr;
}

}  // namespace evo::http
