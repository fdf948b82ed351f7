/*
 * sip-alg router benchmark load generator (compiled by bench/router.ts with `cc -O2 -pthread`).
 *
 *   loadgen uac --ips A,B,.. --dst IP:PORT --kind invite|mix|register --rate R (--count N | --duration S)
 *               [--run ID] [--seq0 S] [--mbase P] [--mports N] [--aors N] [--gap N] [--linger MS]
 *       Phone side. Sends real SIP requests from IP:5060 of every --ips address (round robin, one
 *       address per call), paced to R messages/s on CLOCK_MONOTONIC (absolute sleeps, no spinning).
 *       invite:   one ~800-byte INVITE with SDP per message (unique Call-ID and media port).
 *       register: one REGISTER per message (AOR u<seq % aors>).
 *       mix:      per call unit REGISTER, INVITE, and --gap units later its ACK and BYE; the UAS
 *                 answers 200 / 180+200(SDP) / 200, so R counts requests + responses (R/2 sent here).
 *       The send time (CLOCK_MONOTONIC ns, system-wide, so comparable across namespaces) travels in
 *       the Via branch: z9hG4bK-<run>-<seq>-<ns>. Responses are counted by a receiver thread.
 *       Prints one JSON line.
 *
 *   loadgen uas --bind IP:PORT --run ID [--respond]
 *       Provider side. Counts requests of run ID, whether they still carry a private 10.77.0.x address
 *       (the ALG did not translate them), and their one-way latency (now - send time). With
 *       --respond, answers REGISTER (200, Contact echoed with expires=3600), INVITE (180, 200 with SDP)
 *       and BYE (200). Prints "ready" when bound, one JSON line on SIGTERM/SIGINT.
 *
 *   loadgen rtp --bind IP --ports P1,P2,.. (--peer IP --peer-ports Q1,Q2,.. | --latch) --duration S
 *       Media: 172-byte RTP packets (G.711 20 ms) from every local port to its peer as fast as it can
 *       (sendmmsg), counting what arrives on the same sockets. --latch sends to wherever the first
 *       packet on that socket came from (symmetric RTP, as an SBC does). Prints one JSON line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static void sleep_until(uint64_t t) {
  struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull) };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}
static void die(const char *m) { perror(m); exit(2); }
/* CPU time of this process, all threads, µs (user + system: the kernel's forwarding of what it
 * sends runs in softirq inside its sendto and is charged here when softirq time is not accounted apart) */
static double cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static const char *arg(int argc, char **argv, const char *name, const char *def) {
  for (int i = 2; i < argc - 1; i++) if (!strcmp(argv[i], name)) return argv[i + 1];
  return def;
}
static int flag(int argc, char **argv, const char *name) {
  for (int i = 2; i < argc; i++) if (!strcmp(argv[i], name)) return 1;
  return 0;
}
static int split(const char *s, char out[][64], int max) {
  int n = 0;
  const char *p = s;
  while (*p && n < max) {
    const char *c = strchr(p, ',');
    size_t l = c ? (size_t)(c - p) : strlen(p);
    if (l > 63) l = 63;
    memcpy(out[n], p, l); out[n][l] = 0; n++;
    if (!c) break;
    p = c + 1;
  }
  return n;
}
static int udp_socket(const char *ip, int port, int bufsz) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof bufsz);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", ip); exit(2); }
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  return fd;
}
static void parse_hostport(const char *s, char *ip, int *port) {
  const char *c = strrchr(s, ':');
  if (!c) { fprintf(stderr, "need IP:PORT: %s\n", s); exit(2); }
  memcpy(ip, s, (size_t)(c - s)); ip[c - s] = 0;
  *port = atoi(c + 1);
}
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}
static volatile sig_atomic_t stop_flag;
static void on_signal(int s) { (void)s; stop_flag = 1; }

/* -------- latency samples -------- */
typedef struct { uint64_t *v; size_t n, cap; } samples_t;
static void sample_add(samples_t *s, uint64_t x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 65536;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) die("realloc");
  }
  s->v[s->n++] = x;
}
static void sample_print(samples_t *s, const char *name) {
  if (!s->n) { printf("\"%s\":null", name); return; }
  qsort(s->v, s->n, sizeof *s->v, cmp_u64);
  double q[4] = { 0.5, 0.99, 0.999, 1.0 };
  uint64_t r[4];
  for (int i = 0; i < 4; i++) { size_t k = (size_t)(q[i] * (double)(s->n - 1)); r[i] = s->v[k]; }
  printf("\"%s\":{\"n\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}", name, s->n, r[0] / 1e3, r[1] / 1e3, r[2] / 1e3, r[3] / 1e3);
}

/* -------- SIP helpers -------- */
/* value of header `name` (with ": "), copied to out up to CRLF */
static int header(const char *m, size_t len, const char *name, char *out, size_t outsz) {
  size_t nl = strlen(name);
  const char *p = m, *end = m + len;
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol || eol == p) return 0; /* end of headers */
    if ((size_t)(eol - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      size_t l = (size_t)(eol - v);
      if (l >= outsz) l = outsz - 1;
      memcpy(out, v, l); out[l] = 0;
      return 1;
    }
    p = eol + 2;
  }
  return 0;
}
/* run, seq and send time from "branch=z9hG4bK-<run>-<seq>-<ns>" */
static int branch_info(const char *m, size_t len, long *run, long *seq, uint64_t *ts) {
  const char *b = memmem(m, len, "branch=z9hG4bK-", 15);
  if (!b) return 0;
  char *e;
  b += 15;
  *run = strtol(b, &e, 10); if (*e != '-') return 0;
  *seq = strtol(e + 1, &e, 10); if (*e != '-') return 0;
  *ts = strtoull(e + 1, &e, 10);
  return 1;
}

/* -------- uac -------- */
enum { K_INVITE, K_REGISTER, K_MIX };
typedef struct {
  int nfd;
  int fds[64];
  long run;
  volatile int done;
  uint64_t rx, rx_ok, rx_by[8];
  samples_t rtt;
  char bad[400]; /* the first response that came back untranslated */
} uac_rx_t;

/* the first `sz - 1` bytes of message m as a JSON string's content: line ends as "|", quotes and
   backslashes and other controls as "." (a sample of what arrived wrong, for the bench's report) */
static void json_sample(char *out, size_t sz, const char *m, size_t len) {
  size_t j = 0;
  for (size_t i = 0; i < len && j + 1 < sz; i++) {
    unsigned char c = (unsigned char)m[i];
    if (c == '\r') continue;
    out[j++] = c == '\n' ? '|' : (c < 32 || c == '"' || c == '\\' || c > 126) ? '.' : (char)c;
  }
  out[j] = 0;
}

static void *uac_receiver(void *arg) {
  uac_rx_t *r = arg;
  struct pollfd pf[64];
  for (int i = 0; i < r->nfd; i++) { pf[i].fd = r->fds[i]; pf[i].events = POLLIN; }
  static char buf[4096];
  while (!r->done) {
    if (poll(pf, (nfds_t)r->nfd, 50) <= 0) continue;
    for (int i = 0; i < r->nfd; i++) {
      if (!(pf[i].revents & POLLIN)) continue;
      for (;;) {
        ssize_t n = recv(pf[i].fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n <= 0) break;
        uint64_t t = now_ns();
        buf[n] = 0;
        long run, seq; uint64_t ts;
        if (strncmp(buf, "SIP/2.0 ", 8) || !branch_info(buf, (size_t)n, &run, &seq, &ts) || run != r->run) continue;
        r->rx++;
        int code = atoi(buf + 8);
        r->rx_by[code / 100 < 8 ? code / 100 : 0]++;
        /* the top Via must be back on the phone's private address (translated WAN->LAN) */
        char via[512];
        if (header(buf, (size_t)n, "Via", via, sizeof via) && strstr(via, "10.77.0.")) r->rx_ok++;
        else if (!r->bad[0]) json_sample(r->bad, sizeof r->bad, buf, (size_t)n);
        sample_add(&r->rtt, t - ts);
      }
    }
  }
  return NULL;
}

static const char *SDP_FMT =
  "v=0\r\n"
  "o=- %ld 1 IN IP4 %s\r\n"
  "s=sip-alg bench\r\n"
  "c=IN IP4 %s\r\n"
  "t=0 0\r\n"
  "m=audio %d RTP/AVP 0 8 9 101\r\n"
  "a=rtpmap:0 PCMU/8000\r\n"
  "a=rtpmap:8 PCMA/8000\r\n"
  "a=rtpmap:9 G722/8000\r\n"
  "a=rtpmap:101 telephone-event/8000\r\n"
  "a=fmtp:101 0-16\r\n"
  "a=ptime:20\r\n"
  "a=sendrecv\r\n";

static int build_invite(char *out, size_t sz, const char *ip, long run, long seq, long unit, uint64_t ts, int mport) {
  char sdp[1024];
  int sl = snprintf(sdp, sizeof sdp, SDP_FMT, unit, ip, ip, mport);
  return snprintf(out, sz,
    "INVITE sip:+15550100%ld@203.0.113.10:5080 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP %s:5060;branch=z9hG4bK-%ld-%ld-%llu;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: \"Bench Phone %ld\" <sip:u%ld@203.0.113.10>;tag=f%ld\r\n"
    "To: <sip:+15550100%ld@203.0.113.10:5080>\r\n"
    "Call-ID: b%ld-%ld@bench\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:u%ld@%s:5060;transport=udp>\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY, PRACK\r\n"
    "Supported: replaces, timer, 100rel\r\n"
    "Session-Expires: 1800;refresher=uac\r\n"
    "Min-SE: 90\r\n"
    "User-Agent: sip-alg-bench/1.0\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: %d\r\n\r\n%s",
    unit % 10000, ip, run, seq, (unsigned long long)ts, unit % 1000, unit % 1000, unit, unit % 10000, run, unit, unit % 1000, ip, sl, sdp);
}
static int build_register(char *out, size_t sz, const char *ip, long run, long seq, uint64_t ts, long aor) {
  return snprintf(out, sz,
    "REGISTER sip:203.0.113.10:5080 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP %s:5060;branch=z9hG4bK-%ld-%ld-%llu;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:u%ld@203.0.113.10>;tag=r%ld\r\n"
    "To: <sip:u%ld@203.0.113.10>\r\n"
    "Call-ID: r%ld-%ld@bench\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:u%ld@%s:5060;transport=udp>\r\n"
    "Expires: 3600\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n"
    "User-Agent: sip-alg-bench/1.0\r\n"
    "Content-Length: 0\r\n\r\n",
    ip, run, seq, (unsigned long long)ts, aor, seq, aor, run, seq, aor, ip);
}
/* ACK (cseq 1) or BYE (cseq 2) of call `unit` */
static int build_indialog(char *out, size_t sz, const char *method, int cseq, const char *ip, long run, long seq, long unit, uint64_t ts) {
  return snprintf(out, sz,
    "%s sip:+15550100%ld@203.0.113.10:5080 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP %s:5060;branch=z9hG4bK-%ld-%ld-%llu;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: \"Bench Phone %ld\" <sip:u%ld@203.0.113.10>;tag=f%ld\r\n"
    "To: <sip:+15550100%ld@203.0.113.10:5080>;tag=t%ld\r\n"
    "Call-ID: b%ld-%ld@bench\r\n"
    "CSeq: %d %s\r\n"
    "Contact: <sip:u%ld@%s:5060;transport=udp>\r\n"
    "User-Agent: sip-alg-bench/1.0\r\n"
    "Content-Length: 0\r\n\r\n",
    method, unit % 10000, ip, run, seq, (unsigned long long)ts, unit % 1000, unit % 1000, unit, unit % 10000, unit, run, unit, cseq, method, unit % 1000, ip);
}

static int uac(int argc, char **argv) {
  char ips[64][64];
  int nips = split(arg(argc, argv, "--ips", "10.77.0.11"), ips, 64);
  char dip[64]; int dport;
  parse_hostport(arg(argc, argv, "--dst", "203.0.113.10:5080"), dip, &dport);
  const char *kind_s = arg(argc, argv, "--kind", "invite");
  int kind = !strcmp(kind_s, "mix") ? K_MIX : !strcmp(kind_s, "register") ? K_REGISTER : K_INVITE;
  double rate = atof(arg(argc, argv, "--rate", "1000"));
  double duration = atof(arg(argc, argv, "--duration", "0"));
  long count = atol(arg(argc, argv, "--count", "0"));
  long run = atol(arg(argc, argv, "--run", "1"));
  long seq0 = atol(arg(argc, argv, "--seq0", "0"));
  int mbase = atoi(arg(argc, argv, "--mbase", "1024"));
  long mports = atol(arg(argc, argv, "--mports", "32000"));
  long aors = atol(arg(argc, argv, "--aors", "1000"));
  long gap = atol(arg(argc, argv, "--gap", "0"));
  /* media port index of message seq: ((seq - seq0) * mslots + mslot) % mports, so that parallel
     generators (mslot 0..mslots-1) never offer the same private media endpoint */
  long mslot = atol(arg(argc, argv, "--mslot", "0")), mslots = atol(arg(argc, argv, "--mslots", "1"));
  int linger = atoi(arg(argc, argv, "--linger", "500"));
  /* requests/s sent here: the mix's other half are the UAS's responses */
  double req_rate = kind == K_MIX ? rate / 2 : rate;
  if (!count) count = (long)(req_rate * duration);
  if (kind == K_MIX && !gap) gap = (long)(req_rate / 4 * 0.05) + 1; /* ACK/BYE ~50 ms after the INVITE */

  uac_rx_t rx = { .nfd = nips, .run = run };
  for (int i = 0; i < nips; i++) rx.fds[i] = udp_socket(ips[i], 5060, 8 << 20);
  pthread_t th;
  pthread_create(&th, NULL, uac_receiver, &rx);

  struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)dport) };
  inet_pton(AF_INET, dip, &dst.sin_addr);
  static char msg[4096];
  uint64_t sent = 0, sent_by[4] = { 0 }, errors = 0, bytes = 0;
  uint64_t period = (uint64_t)(1e9 / req_rate);
  uint64_t t0 = now_ns() + 1000000, late_max = 0, behind = 0;
  long i = 0;
  /* mix: slot i -> unit i/4, part i%4: 0 REGISTER(u), 1 INVITE(u), 2 ACK(u-gap), 3 BYE(u-2*gap).
     The trailing ACKs/BYEs of the last units are sent after the last slot. */
  long slots = count;
  long extra = kind == K_MIX ? 8 * gap : 0;
  for (; i < slots + extra; i++) {
    uint64_t at = t0 + (uint64_t)i * period;
    uint64_t now = now_ns();
    if (now < at) { sleep_until(at); now = now_ns(); }
    else if (now - at > late_max) late_max = now - at;
    behind = now > at ? now - at : 0;
    long seq = seq0 + i;
    const char *ip;
    int len = 0, k = 0;
    if (kind == K_INVITE) {
      if (i >= slots) break;
      ip = ips[seq % nips];
      len = build_invite(msg, sizeof msg, ip, run, seq, seq, now_ns(), mbase + (int)(2 * (((seq - seq0) * mslots + mslot) % mports)));
    } else if (kind == K_REGISTER) {
      if (i >= slots) break;
      ip = ips[seq % nips];
      len = build_register(msg, sizeof msg, ip, run, seq, now_ns(), aors ? seq % aors : seq);
      k = 1;
    } else {
      long u = seq0 / 4 + i / 4, part = i % 4;
      long target = part == 2 ? u - gap : part == 3 ? u - 2 * gap : u;
      long last_unit = seq0 / 4 + (slots - 1) / 4;
      if (target < seq0 / 4 || target > last_unit) continue;
      if (i >= slots && part < 2) continue;
      ip = ips[target % nips];
      if (part == 0) { len = build_register(msg, sizeof msg, ip, run, seq, now_ns(), target % aors); k = 1; }
      else if (part == 1) { len = build_invite(msg, sizeof msg, ip, run, seq, target, now_ns(), mbase + (int)(2 * (((target - seq0 / 4) * mslots + mslot) % mports))); k = 0; }
      else if (part == 2) { len = build_indialog(msg, sizeof msg, "ACK", 1, ip, run, seq, target, now_ns()); k = 2; }
      else { len = build_indialog(msg, sizeof msg, "BYE", 2, ip, run, seq, target, now_ns()); k = 3; }
    }
    int fd = rx.fds[(ip - ips[0]) / 64];
    if (sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&dst, sizeof dst) < 0) errors++;
    else { sent++; sent_by[k]++; bytes += (uint64_t)len; }
  }
  uint64_t elapsed = now_ns() - t0;
  usleep((useconds_t)linger * 1000);
  rx.done = 1;
  pthread_join(th, NULL);
  printf("{\"sent\":%llu,\"invite\":%llu,\"register\":%llu,\"ack\":%llu,\"bye\":%llu,\"send_errors\":%llu,\"avg_bytes\":%.0f,\"elapsed_s\":%.4f,\"achieved_rate\":%.1f,\"late_max_us\":%.0f,\"behind_us\":%.0f,"
         "\"resp_rx\":%llu,\"resp_ok\":%llu,\"resp_1xx\":%llu,\"resp_2xx\":%llu,",
         (unsigned long long)sent, (unsigned long long)sent_by[0], (unsigned long long)sent_by[1], (unsigned long long)sent_by[2], (unsigned long long)sent_by[3],
         (unsigned long long)errors, sent ? (double)bytes / (double)sent : 0, elapsed / 1e9, sent / (elapsed / 1e9), late_max / 1e3, behind / 1e3,
         (unsigned long long)rx.rx, (unsigned long long)rx.rx_ok, (unsigned long long)rx.rx_by[1], (unsigned long long)rx.rx_by[2]);
  sample_print(&rx.rtt, "rtt");
  if (rx.bad[0]) printf(",\"resp_bad\":\"%s\"", rx.bad);
  printf(",\"cpu_us\":%.0f}\n", cpu_us());
  return 0;
}

/* -------- uas -------- */
static int uas(int argc, char **argv) {
  char ip[64]; int port;
  parse_hostport(arg(argc, argv, "--bind", "203.0.113.10:5080"), ip, &port);
  long run = atol(arg(argc, argv, "--run", "1"));
  int respond = flag(argc, argv, "--respond");
  int fd = udp_socket(ip, port, 32 << 20);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  printf("ready\n");
  fflush(stdout);
  uint64_t rx = 0, clean = 0, other = 0, by[4] = { 0 }, resp = 0, resp_err = 0;
  static char bad[1200]; /* the first request that arrived with a private address in it */
  samples_t lat = { 0 };
  enum { B = 64 };
  static char bufs[B][4096];
  struct mmsghdr mm[B];
  struct iovec iov[B];
  struct sockaddr_in from[B];
  static char out[4096];
  for (;;) {
    for (int i = 0; i < B; i++) {
      iov[i].iov_base = bufs[i]; iov[i].iov_len = sizeof bufs[i] - 1;
      memset(&mm[i].msg_hdr, 0, sizeof mm[i].msg_hdr);
      mm[i].msg_hdr.msg_iov = &iov[i]; mm[i].msg_hdr.msg_iovlen = 1;
      mm[i].msg_hdr.msg_name = &from[i]; mm[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    if (stop_flag) break;
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    if (poll(&pf, 1, 100) <= 0) continue;
    int n = recvmmsg(fd, mm, B, MSG_DONTWAIT, NULL);
    uint64_t t = now_ns();
    if (n <= 0) continue;
    for (int j = 0; j < n; j++) {
      char *m = bufs[j];
      size_t len = mm[j].msg_len;
      m[len] = 0;
      long r, seq; uint64_t ts;
      if (!branch_info(m, len, &r, &seq, &ts) || r != run) { other++; continue; }
      rx++;
      int k = !strncmp(m, "INVITE ", 7) ? 0 : !strncmp(m, "REGISTER ", 9) ? 1 : !strncmp(m, "ACK ", 4) ? 2 : !strncmp(m, "BYE ", 4) ? 3 : -1;
      if (k >= 0) by[k]++;
      /* translated: no private LAN address left anywhere in the message */
      if (!memmem(m, len, "10.77.0.", 8)) clean++;
      else if (!bad[0]) json_sample(bad, sizeof bad, m, len);
      sample_add(&lat, t - ts);
      if (!respond || k < 0 || k == 2) continue;
      char via[512], fromh[256], to[256], cid[128], cseq[64], contact[256];
      if (!header(m, len, "Via", via, sizeof via) || !header(m, len, "From", fromh, sizeof fromh) || !header(m, len, "To", to, sizeof to) ||
          !header(m, len, "Call-ID", cid, sizeof cid) || !header(m, len, "CSeq", cseq, sizeof cseq)) continue;
      long unit = 0;
      sscanf(cid, "b%*d-%ld@", &unit);
      int ol;
      struct sockaddr *sa = (struct sockaddr *)&from[j];
      if (k == 1) {
        if (!header(m, len, "Contact", contact, sizeof contact)) contact[0] = 0;
        ol = snprintf(out, sizeof out, "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=g%ld\r\nCall-ID: %s\r\nCSeq: %s\r\nContact: %s;expires=3600\r\nServer: sip-alg-bench\r\nContent-Length: 0\r\n\r\n",
                      via, fromh, to, seq, cid, cseq, contact);
        if (sendto(fd, out, (size_t)ol, 0, sa, sizeof from[j]) < 0) resp_err++; else resp++;
      } else if (k == 0) {
        ol = snprintf(out, sizeof out, "SIP/2.0 180 Ringing\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=t%ld\r\nCall-ID: %s\r\nCSeq: %s\r\nContact: <sip:uas@203.0.113.10:5080>\r\nContent-Length: 0\r\n\r\n",
                      via, fromh, to, unit, cid, cseq);
        if (sendto(fd, out, (size_t)ol, 0, sa, sizeof from[j]) < 0) resp_err++; else resp++;
        char sdp[512];
        int sl = snprintf(sdp, sizeof sdp, "v=0\r\no=- %ld 1 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio %ld RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n",
                          unit, 40000 + 2 * (unit % 10000));
        ol = snprintf(out, sizeof out, "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=t%ld\r\nCall-ID: %s\r\nCSeq: %s\r\nContact: <sip:uas@203.0.113.10:5080>\r\nSession-Expires: 1800;refresher=uac\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
                      via, fromh, to, unit, cid, cseq, sl, sdp);
        if (sendto(fd, out, (size_t)ol, 0, sa, sizeof from[j]) < 0) resp_err++; else resp++;
      } else if (k == 3) {
        ol = snprintf(out, sizeof out, "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n", via, fromh, to, cid, cseq);
        if (sendto(fd, out, (size_t)ol, 0, sa, sizeof from[j]) < 0) resp_err++; else resp++;
      }
    }
  }
  printf("{\"rx\":%llu,\"clean\":%llu,\"invite\":%llu,\"register\":%llu,\"ack\":%llu,\"bye\":%llu,\"other\":%llu,\"resp_sent\":%llu,\"resp_errors\":%llu,",
         (unsigned long long)rx, (unsigned long long)clean, (unsigned long long)by[0], (unsigned long long)by[1], (unsigned long long)by[2], (unsigned long long)by[3],
         (unsigned long long)other, (unsigned long long)resp, (unsigned long long)resp_err);
  sample_print(&lat, "latency");
  if (bad[0]) printf(",\"unclean\":\"%s\"", bad);
  printf(",\"cpu_us\":%.0f}\n", cpu_us());
  return 0;
}

/* -------- rtp -------- */
typedef struct {
  int n;
  int fds[64];
  struct sockaddr_in peer[64];
  volatile int have_peer[64];
  volatile int done;
  uint64_t rx;
} rtp_t;

static void *rtp_receiver(void *arg) {
  rtp_t *r = arg;
  struct pollfd pf[64];
  for (int i = 0; i < r->n; i++) { pf[i].fd = r->fds[i]; pf[i].events = POLLIN; }
  enum { B = 64 };
  static char bufs[B][256];
  struct mmsghdr mm[B];
  struct iovec iov[B];
  struct sockaddr_in from[B];
  while (!r->done) {
    if (poll(pf, (nfds_t)r->n, 50) <= 0) continue;
    for (int i = 0; i < r->n; i++) {
      if (!(pf[i].revents & POLLIN)) continue;
      for (;;) {
        for (int j = 0; j < B; j++) {
          iov[j].iov_base = bufs[j]; iov[j].iov_len = sizeof bufs[j];
          memset(&mm[j].msg_hdr, 0, sizeof mm[j].msg_hdr);
          mm[j].msg_hdr.msg_iov = &iov[j]; mm[j].msg_hdr.msg_iovlen = 1;
          mm[j].msg_hdr.msg_name = &from[j]; mm[j].msg_hdr.msg_namelen = sizeof from[j];
        }
        int n = recvmmsg(pf[i].fd, mm, B, MSG_DONTWAIT, NULL);
        if (n <= 0) break;
        r->rx += (uint64_t)n;
        if (!r->have_peer[i]) { r->peer[i] = from[0]; __sync_synchronize(); r->have_peer[i] = 1; }
      }
    }
  }
  return NULL;
}

static int rtp(int argc, char **argv) {
  const char *bind_ip = arg(argc, argv, "--bind", "10.77.0.11");
  char ports[64][64], pports[64][64];
  rtp_t r = { 0 };
  r.n = split(arg(argc, argv, "--ports", "30000"), ports, 64);
  int latch = flag(argc, argv, "--latch");
  double duration = atof(arg(argc, argv, "--duration", "3"));
  double warm = atof(arg(argc, argv, "--wait", "0"));
  if (!latch) {
    const char *peer = arg(argc, argv, "--peer", "203.0.113.10");
    int np = split(arg(argc, argv, "--peer-ports", "40000"), pports, 64);
    for (int i = 0; i < r.n; i++) {
      r.peer[i].sin_family = AF_INET;
      r.peer[i].sin_port = htons((uint16_t)atoi(pports[i % np]));
      inet_pton(AF_INET, peer, &r.peer[i].sin_addr);
      r.have_peer[i] = 1;
    }
  }
  for (int i = 0; i < r.n; i++) r.fds[i] = udp_socket(bind_ip, atoi(ports[i]), 16 << 20);
  printf("ready\n");
  fflush(stdout);
  pthread_t th;
  pthread_create(&th, NULL, rtp_receiver, &r);
  if (warm > 0) usleep((useconds_t)(warm * 1e6));
  enum { B = 32 };
  static unsigned char pkt[172];
  pkt[0] = 0x80; pkt[1] = 0;
  struct mmsghdr mm[B];
  struct iovec iov[B];
  uint64_t sent = 0, errors = 0;
  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(duration * 1e9);
  uint16_t sq = 0;
  while (now_ns() < end) {
    for (int i = 0; i < r.n; i++) {
      if (!r.have_peer[i]) continue;
      for (int j = 0; j < B; j++) {
        iov[j].iov_base = pkt; iov[j].iov_len = sizeof pkt;
        memset(&mm[j].msg_hdr, 0, sizeof mm[j].msg_hdr);
        mm[j].msg_hdr.msg_iov = &iov[j]; mm[j].msg_hdr.msg_iovlen = 1;
        mm[j].msg_hdr.msg_name = &r.peer[i]; mm[j].msg_hdr.msg_namelen = sizeof r.peer[i];
      }
      pkt[2] = (unsigned char)(sq >> 8); pkt[3] = (unsigned char)sq; sq++;
      int n = sendmmsg(r.fds[i], mm, B, 0);
      if (n < 0) { errors++; usleep(100); } else sent += (uint64_t)n;
    }
    int any = 0;
    for (int i = 0; i < r.n; i++) any |= r.have_peer[i];
    if (!any) usleep(1000);
  }
  double el = (now_ns() - t0) / 1e9;
  usleep(300000);
  r.done = 1;
  pthread_join(th, NULL);
  printf("{\"sent\":%llu,\"rx\":%llu,\"send_errors\":%llu,\"elapsed_s\":%.3f,\"tx_pps\":%.0f}\n",
         (unsigned long long)sent, (unsigned long long)r.rx, (unsigned long long)errors, el, sent / el);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) { fprintf(stderr, "usage: loadgen uac|uas|rtp ...\n"); return 2; }
  if (!strcmp(argv[1], "uac")) return uac(argc, argv);
  if (!strcmp(argv[1], "uas")) return uas(argc, argv);
  if (!strcmp(argv[1], "rtp")) return rtp(argc, argv);
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
