/*
 * fileio — atomic file replacement: a reader sees the old file or the new
 * one, never a torn mix, and a crash leaves one of the two on disk.
 */
#ifndef BERTH_FILEIO_H
#define BERTH_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Write data to dir/name atomically: temp file in dir, write loop, fsync,
 * chmod mode, rename over name, fsync dir. 0, or -1 with a sentence in err.
 */
int fileio_write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        mode_t mode, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
