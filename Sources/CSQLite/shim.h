#include <sqlite3.h>

/* sqlite3_config is variadic, which Swift cannot call. */

/* Stops SQLite counting its heap use. The count is kept under one process-wide mutex that every
   sqlite3_malloc and sqlite3_free takes; Sluice reads none of it. Only works before the first
   connection opens (SQLITE_MISUSE after). */
static inline int sluice_sqlite3_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Stops every new page cache from allocating room for its first pages in one block. Each
   UPDATE ... RETURNING opens a temporary table, and so a page cache, for its rows: zeroing and
   freeing that block cost more than the update itself. Pages are allocated one at a time instead.
   Only works before the first connection opens. */
static inline int sluice_sqlite3_no_bulk_page_cache(void) {
    return sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)0, 0, 0);
}
