/* The do-nothing socketmap server of bench/scale.mjs: one thread in epoll, one read and one
 * write per request (as Node's event loop does them), every request answered NOTFOUND
 * without looking at it beyond its netstring length. What is left of a lookup's time when
 * the lookup itself costs nothing: the floor mailmapd's socketmap is measured against.
 * Prints its loopback port on its first line. Built by the bench with `cc -O2`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char reply[] = "9:NOTFOUND ,";

/* Answers every complete netstring in buf[0, have); returns the bytes consumed, -1 on a failed write. */
static long answer_all(int fd, const char *buf, size_t have) {
  size_t off = 0;
  for (;;) {
    size_t len = 0, i = off;
    while (i < have && buf[i] >= '0' && buf[i] <= '9') len = len * 10 + (size_t)(buf[i++] - '0');
    if (i >= have || buf[i] != ':' || have - i - 1 < len + 1) return (long)off;
    off = i + 1 + len + 1;
    if (write(fd, reply, sizeof reply - 1) < 0) return -1;
  }
}

int main(void) {
  int one = 1;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t l = sizeof a;
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 128) < 0 || getsockname(s, (struct sockaddr *)&a, &l) < 0) return 1;
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = s };
  epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  static char buf[65536];
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    for (int k = 0; k < n; k++) {
      int fd = evs[k].data.fd;
      if (fd == s) {
        int c = accept4(s, 0, 0, SOCK_NONBLOCK);
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event e = { .events = EPOLLIN, .data.fd = c };
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
        continue;
      }
      /* postmap sends one request and waits for its answer: no partial request to keep */
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0 || answer_all(fd, buf, (size_t)r) < 0) close(fd);
    }
  }
}
