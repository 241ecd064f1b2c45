/*
 * tapfwd — the minimal C TAP forwarder: the performance anchor that the
 * usernet dataplane is compared against in bench/.
 *
 *   tapfwd [--vnet] TAP_A TAP_B
 *
 * Creates (or attaches to) two TAP devices (IFF_TAP|IFF_NO_PI, non-blocking),
 * prints "ready" on stdout once both are open, then poll()s both and copies
 * every frame read from one to the other (read/write per frame until EAGAIN),
 * until SIGTERM or SIGINT. No batching tricks: one read(2) and one write(2)
 * per frame. Frames the peer refuses (e.g. its link is down: EIO) are
 * dropped. Counters go to stderr on exit.
 *
 * Default mode: no offloads, so every frame is at most MTU-sized.
 *
 * --vnet: both TAPs are opened with IFF_VNET_HDR, the header size is set to
 * 12 (TUNSETVNETHDRSZ: struct virtio_net_hdr_mrg_rxbuf) and TUNSETOFFLOAD
 * turns on TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6 and, where the kernel accepts
 * it, TUN_F_USO4|TUN_F_USO6 (else without them; stderr says which). The
 * kernels on both sides then hand over unsegmented super-frames (up to
 * 64 KiB) with partial checksums; each is read whole (with its 12-byte
 * header in front) into a 128 KiB buffer and written to the other TAP with
 * the header unchanged, so the receiving kernel never segments it either.
 * This is what usernet with offloads on is measured against.
 *
 * Build:  cc -O2 -Wall -o build/tapfwd bench/reference/tapfwd.c
 *         (or: make -C bench/reference, which writes build/tapfwd)
 * Needs CAP_NET_ADMIN (root) to create the devices.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

/* the virtio-net header in --vnet mode (struct virtio_net_hdr_mrg_rxbuf) */
#define VNET_HDR_LEN 12

static int vnet;

/* IFF_VNET_HDR with a 12-byte header, and checksum + TSO (+ USO if the kernel has it) offloads. */
static void set_offloads(int fd, const char *name) {
  int sz = VNET_HDR_LEN;
  unsigned long base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
    fprintf(stderr, "tapfwd: TUNSETVNETHDRSZ %s: %s\n", name, strerror(errno));
    exit(1);
  }
  if (ioctl(fd, TUNSETOFFLOAD, base | TUN_F_USO4 | TUN_F_USO6) == 0) {
    fprintf(stderr, "tapfwd: %s: offloads csum tso4 tso6 uso4 uso6\n", name);
    return;
  }
  if (ioctl(fd, TUNSETOFFLOAD, base) < 0) {
    fprintf(stderr, "tapfwd: TUNSETOFFLOAD %s: %s\n", name, strerror(errno));
    exit(1);
  }
  fprintf(stderr, "tapfwd: %s: offloads csum tso4 tso6 (no USO on this kernel)\n", name);
}

static int open_tap(const char *name) {
  struct ifreq ifr;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    perror("open /dev/net/tun");
    exit(1);
  }
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  if (strlen(name) >= IFNAMSIZ) {
    fprintf(stderr, "tapfwd: name too long: %s\n", name);
    exit(2);
  }
  strcpy(ifr.ifr_name, name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    fprintf(stderr, "tapfwd: TUNSETIFF %s: %s\n", name, strerror(errno));
    exit(1);
  }
  if (vnet) set_offloads(fd, name);
  return fd;
}

/* Copies frames from `from` to `to` until `from` has none left (in --vnet mode each with its header, unchanged). */
static int forward(int from, int to, unsigned long *frames, unsigned long *drops) {
  static unsigned char buf[1 << 17]; /* a 64 KiB super-frame + Ethernet and virtio-net headers fits */
  for (;;) {
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      perror("read");
      return -1;
    }
    if (write(to, buf, (size_t)n) == n)
      (*frames)++;
    else
      (*drops)++;
  }
}

int main(int argc, char **argv) {
  struct sigaction sa;
  struct pollfd pfd[2];
  unsigned long frames[2] = {0, 0}, drops[2] = {0, 0};
  int fd[2];

  if (argc == 4 && strcmp(argv[1], "--vnet") == 0) {
    vnet = 1;
    argv++;
    argc--;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: tapfwd [--vnet] TAP_A TAP_B\n");
    return 2;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  fd[0] = open_tap(argv[1]);
  fd[1] = open_tap(argv[2]);
  printf("ready\n");
  fflush(stdout);

  pfd[0].fd = fd[0];
  pfd[1].fd = fd[1];
  pfd[0].events = pfd[1].events = POLLIN;
  while (!stop) {
    int r = poll(pfd, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      perror("poll");
      return 1;
    }
    for (int i = 0; i < 2; i++) {
      if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        fprintf(stderr, "tapfwd: %s went away\n", argv[1 + i]);
        stop = 1;
      } else if (pfd[i].revents & POLLIN) {
        if (forward(fd[i], fd[1 - i], &frames[i], &drops[i]) < 0) stop = 1;
      }
    }
  }
  fprintf(stderr, "tapfwd: %s->%s %lu frames (%lu dropped), %s->%s %lu frames (%lu dropped)\n", argv[1], argv[2],
          frames[0], drops[0], argv[2], argv[1], frames[1], drops[1]);
  close(fd[0]);
  close(fd[1]);
  return 0;
}
