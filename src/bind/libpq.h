// libpq, loaded on first use: the postgres module calls libpq through this
// table of function pointers, filled by dlopen("libpq.so.5") + dlsym the
// first time a connection is opened, so the evo binary (and every app `evo
// build` makes of it) does not link libpq and the dozen libraries it pulls in
// (krb5, LDAP, GnuTLS, SASL...): a program that never talks to PostgreSQL
// needs none of them installed, nor pays for loading them at start-up.
// <libpq-fe.h> is still included for the types.
//
// EVO_LIBPQ, when set, names the library to load instead of libpq.so.5 (the
// tests point it at a missing file to check the error).
#pragma once

#include <libpq-fe.h>

#include <string>

namespace evo::libpq {

// One member per libpq function the postgres module calls, named as libpq
// names it and typed from its declaration.
struct Api {
  decltype(&::PQlibVersion) PQlibVersion;
  decltype(&::PQconnectStartParams) PQconnectStartParams;
  decltype(&::PQconnectPoll) PQconnectPoll;
  decltype(&::PQstatus) PQstatus;
  decltype(&::PQerrorMessage) PQerrorMessage;
  decltype(&::PQsetNoticeProcessor) PQsetNoticeProcessor;
  decltype(&::PQsetnonblocking) PQsetnonblocking;
  decltype(&::PQsocket) PQsocket;
  decltype(&::PQfinish) PQfinish;
  decltype(&::PQbackendPID) PQbackendPID;
  decltype(&::PQserverVersion) PQserverVersion;
  decltype(&::PQsslInUse) PQsslInUse;
  decltype(&::PQenterPipelineMode) PQenterPipelineMode;
  decltype(&::PQexitPipelineMode) PQexitPipelineMode;
  decltype(&::PQpipelineStatus) PQpipelineStatus;
  decltype(&::PQpipelineSync) PQpipelineSync;
  decltype(&::PQsendQuery) PQsendQuery;
  decltype(&::PQsendQueryParams) PQsendQueryParams;
  decltype(&::PQsendPrepare) PQsendPrepare;
  decltype(&::PQsendQueryPrepared) PQsendQueryPrepared;
  decltype(&::PQflush) PQflush;
  decltype(&::PQconsumeInput) PQconsumeInput;
  decltype(&::PQisBusy) PQisBusy;
  decltype(&::PQgetResult) PQgetResult;
  decltype(&::PQresultStatus) PQresultStatus;
  decltype(&::PQresultErrorField) PQresultErrorField;
  decltype(&::PQresultErrorMessage) PQresultErrorMessage;
  decltype(&::PQntuples) PQntuples;
  decltype(&::PQnfields) PQnfields;
  decltype(&::PQfname) PQfname;
  decltype(&::PQftype) PQftype;
  decltype(&::PQgetisnull) PQgetisnull;
  decltype(&::PQgetvalue) PQgetvalue;
  decltype(&::PQgetlength) PQgetlength;
  decltype(&::PQcmdTuples) PQcmdTuples;
  decltype(&::PQcmdStatus) PQcmdStatus;
  decltype(&::PQclear) PQclear;
  decltype(&::PQputCopyData) PQputCopyData;
  decltype(&::PQputCopyEnd) PQputCopyEnd;
  decltype(&::PQgetCopyData) PQgetCopyData;
  decltype(&::PQnotifies) PQnotifies;
  decltype(&::PQfreemem) PQfreemem;
  decltype(&::PQgetCancel) PQgetCancel;
  decltype(&::PQcancel) PQcancel;
  decltype(&::PQfreeCancel) PQfreeCancel;
  decltype(&::PQescapeIdentifier) PQescapeIdentifier;
  decltype(&::PQescapeLiteral) PQescapeLiteral;
};

// Loads libpq the first time it is called (once per process, thread-safe;
// a failure is remembered too). Returns the filled table, or nullptr when
// the library or one of its functions is missing: load_error() then says
// which, and that Debian's libpq5 package provides it.
const Api* load();
const std::string& load_error();

namespace detail {
extern Api table;  // filled by the first successful load(), never changed after
}

// The table, for code that holds a PGconn or PGresult (which only exist once
// load() succeeded). Inline and unchecked: it is on every row's path.
inline const Api& api() { return detail::table; }

}  // namespace evo::libpq
