/* fileio — see include/berth/fileio.h (the pattern of redis' config rewrite). */
#include "berth/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fileio_write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        mode_t mode, char *err, size_t errlen)
{
    char tmp[4096], dst[4096];
    int fd = -1, dfd = -1;
    size_t off = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.XXXXXX", dir, name) >= sizeof(tmp) ||
        (size_t)snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= sizeof(dst)) {
        snprintf(err, errlen, "path too long: %s/%s", dir, name);
        return -1;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            goto fail_unlink;
        }
        off += (size_t)w;
    }
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
        goto fail_unlink;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, dst) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
        goto fail_unlink;
    }
    /* The rename is durable only once the directory is synced. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}
