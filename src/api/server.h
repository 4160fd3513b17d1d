/* server — the request thread pool of berth-api (see server.c). */
#ifndef BERTH_API_SERVER_H
#define BERTH_API_SERVER_H

/* Listen on socket_path with n request threads, and on auth_path with nauth
 * threads that answer nginx's proxy checks only. 0 / -1 (logged). */
int server_start(const char *socket_path, int n, const char *auth_path, int nauth)
    __attribute__((warn_unused_result));

/* Stop accepting, let threads finish, wait at most timeout_ms. */
void server_stop(int timeout_ms);

#endif
