#include <sqlite3.h>

/* sqlite3_config is variadic, which Swift cannot call. */

/* Stops SQLite counting its heap use. The count is kept under one process-wide mutex that every
   sqlite3_malloc and sqlite3_free takes; Sluice reads none of it. Only works before the first
   connection opens (SQLITE_MISUSE after). */
static inline int sluice_sqlite3_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

