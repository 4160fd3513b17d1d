/*
 * trust — what the root worker checks before it acts on a path or a pid that
 * a less trusted local user (the stack's service user, nginx's) could have
 * put there (README, Security: the local stack).
 */
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "berth/log.h"
#include "berth/util.h"

bool trust_dir(const char *dir, bool own, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        snprintf(err, errlen, "cannot read %s: %s (check box_dir)", dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory%s (check box_dir)", dir,
                 S_ISLNK(st.st_mode) ? " but a symbolic link" : "");
        return false;
    }
    if (own ? st.st_uid != geteuid() : (st.st_uid != geteuid() && st.st_uid != 0)) {
        snprintf(err, errlen,
                 "%s belongs to uid %ld: it must belong to %s (uid %ld), or another user could "
                 "put nginx configuration there",
                 dir, (long)st.st_uid, own ? "the worker's user" : "the worker's user or root",
                 (long)geteuid());
        return false;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (own || !(st.st_mode & S_ISVTX))) {
        snprintf(err, errlen,
                 "%s is writable by its group or by everyone (mode %04o): only its owner may "
                 "write there (chmod go-w)",
                 dir, (unsigned)(st.st_mode & 07777));
        return false;
    }
    return true;
}


bool trust_nginx_master(pid_t pid, char *why, size_t whylen)
{
    char path[64], exe[4096], title[64];
    const char *base;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    n = readlink(path, exe, sizeof(exe) - 1);
    if (n < 0) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    exe[n] = '\0';
    base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
    /* " (deleted)": the package was upgraded under the running master */
    if (strcmp(base, "nginx") != 0 && strcmp(base, "nginx (deleted)") != 0) {
        snprintf(why, whylen, "its program is %.200s, not nginx", exe);
        return false;
    }
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    n = fd < 0 ? -1 : read(fd, title, sizeof(title) - 1);
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        snprintf(why, whylen, "cannot read %s", path);
        return false;
    }
    title[n] = '\0';
    if (strncmp(title, "nginx: master process", 21) != 0) {
        snprintf(why, whylen, "it is not nginx's master process (a worker, or not started yet)");
        return false;
    }
    return true;
}

bool trust_signal_master(const char *pidfile)
{
    char buf[32], why[300];
    long pid;
    ssize_t n;
    struct stat st;
    int pfd, fd = open(pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (n = read(fd, buf, sizeof(buf) - 1)) <= 0) {
        log_error("nginx reload: cannot read the master's pid from %s (%s)", pidfile,
                  fd < 0 ? strerror(errno) : "not a regular file with a pid");
        if (fd >= 0)
            close(fd);
        return false;
    }
    close(fd);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (!util_parse_long(buf, 2, 4194304, &pid)) {
        log_error("nginx reload: %s does not hold a pid", pidfile);
        return false;
    }
    pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (pfd < 0) {
        log_error("nginx reload: no process %ld (from %s): %s", pid, pidfile, strerror(errno));
        return false;
    }
    if (!trust_nginx_master((pid_t)pid, why, sizeof(why))) {
        log_error("nginx reload: refusing to signal pid %ld from %s: %s", pid, pidfile, why);
        close(pfd);
        return false;
    }
    if (syscall(SYS_pidfd_send_signal, pfd, SIGHUP, NULL, 0) < 0) {
        log_error("nginx reload: cannot signal the master (pid %ld): %s", pid, strerror(errno));
        close(pfd);
        return false;
    }
    close(pfd);
    return true;
}
