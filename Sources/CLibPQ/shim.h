#ifndef BEMS_CLIBPQ_SHIM_H
#define BEMS_CLIBPQ_SHIM_H
#include <libpq-fe.h>

/// PQputCopyData takes `const char *`; retyped as `const void *` so Swift can pass raw bytes without rebinding.
static inline int bems_PQputCopyData(PGconn *conn, const void *buffer, int nbytes) {
    return PQputCopyData(conn, (const char *)buffer, nbytes);
}
#endif
