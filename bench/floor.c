/*
 * The floor of a userspace ALG on NFQUEUE, in C (bench/router.ts set-up `floor`): per packet only
 * the kernel work sip-alg must do, and the least userspace work around it.
 *
 *   floor --queue N --wan-ip A.B.C.D
 *
 * Bound to queue N (the project's own iptables rules divert SIP to it), it reads what is ready in
 * one blocking recvmmsg (MSG_WAITFORONE), and for each packet:
 *   - translates the phone's address: LAN->WAN every occurrence of the source address's text
 *     becomes the WAN address, WAN->LAN the WAN address becomes the destination's; only where both
 *     texts have the same length (the router lab's 10.77.0.1xx and 203.0.113.1 do), so no length,
 *     Content-Length or SDP is rebuilt; the UDP checksum is recomputed;
 *   - for an INVITE from the LAN with an SDP audio line, and for a 200 with one from the WAN, makes
 *     what sip-alg's DialogTable.pin makes for one media line: an anchor conntrack (loopback tuple,
 *     helper "sip", a timeout) and two expectations under it (RTP and RTCP, the WAN address's next
 *     pair of ports, NATed to the phone's port), in one ctnetlink sendto, its ACKs read in one
 *     recvmmsg (MSG_DONTWAIT), as native/sipalg.c netlinkTransact does;
 *   - gives the verdict NF_ACCEPT with the payload; the verdicts of one read leave in one sendto.
 * It keeps no dialog: no call state, no registration, no deletes (a BYE's anchor clean-up is not
 * done), no parsing beyond the first line and the m= line. So it is a lower bound of what any
 * userspace ALG on this kernel pays per message, whatever its language.
 * Prints "ready" once bound; SIGTERM ends it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define RX_VEC 8
#define RX_SLOT (128 * 1024)
#define TX_SIZE (1 << 20)

static struct nfq_handle *h;
static struct nfq_q_handle *qh;
static uint16_t qnum;
static int ct_fd;
static uint32_t wan_ip; /* network order */
static char wan_txt[INET_ADDRSTRLEN];
static size_t wan_len;
static char *tx;
static size_t tx_used;
static uint32_t seq = 1;
static uint32_t anchors, exps_made, exps_failed;
static uint16_t anchor_sport = 1024, anchor_dport = 1024, next_port = 1024;
static volatile sig_atomic_t stop;

/* ---- a netlink message writer ---- */
typedef struct { char *p; size_t len; } nlw_t;

static struct nlattr *put(nlw_t *w, uint16_t type, const void *data, size_t len) {
  struct nlattr *a = (struct nlattr *)(w->p + w->len);
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + len);
  if (len) memcpy((char *)a + NLA_HDRLEN, data, len);
  size_t pad = NLA_ALIGN(a->nla_len) - a->nla_len;
  if (pad) memset((char *)a + a->nla_len, 0, pad);
  w->len += NLA_ALIGN(a->nla_len);
  return a;
}
static struct nlattr *nest(nlw_t *w, uint16_t type) { return put(w, type | NLA_F_NESTED, NULL, 0); }
static void end(nlw_t *w, struct nlattr *a) { a->nla_len = (uint16_t)(w->p + w->len - (char *)a); }
static void u8(nlw_t *w, uint16_t t, uint8_t v) { put(w, t, &v, 1); }
static void u16be(nlw_t *w, uint16_t t, uint16_t v) { v = htons(v); put(w, t, &v, 2); }
static void u32be(nlw_t *w, uint16_t t, uint32_t v) { v = htonl(v); put(w, t, &v, 4); }
static void ip4(nlw_t *w, uint16_t t, uint32_t a) { put(w, t, &a, 4); } /* a: network order */

static void tuple(nlw_t *w, uint16_t type, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport) {
  struct nlattr *t = nest(w, type);
  struct nlattr *i = nest(w, CTA_TUPLE_IP);
  ip4(w, CTA_IP_V4_SRC, src);
  ip4(w, CTA_IP_V4_DST, dst);
  end(w, i);
  struct nlattr *p = nest(w, CTA_TUPLE_PROTO);
  u8(w, CTA_PROTO_NUM, IPPROTO_UDP);
  u16be(w, CTA_PROTO_SRC_PORT, sport);
  u16be(w, CTA_PROTO_DST_PORT, dport);
  end(w, p);
  end(w, t);
}

static struct nlmsghdr *begin_msg(nlw_t *w, uint16_t type, uint16_t flags) {
  struct nlmsghdr *n = (struct nlmsghdr *)(w->p + w->len);
  memset(n, 0, NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
  n->nlmsg_type = type;
  n->nlmsg_flags = NLM_F_REQUEST | flags;
  n->nlmsg_seq = seq++;
  struct nfgenmsg *g = NLMSG_DATA(n);
  g->nfgen_family = AF_INET;
  g->version = NFNETLINK_V0;
  w->len += NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  return n;
}
static void end_msg(nlw_t *w, struct nlmsghdr *n) { n->nlmsg_len = (uint32_t)(w->p + w->len - (char *)n); }

/* The anchor and its two pinholes, as ctnetlink.ts anchorMessage and expectationMessage write them. */
static void pin(uint32_t priv_ip, uint16_t priv_port, uint32_t remote_ip) {
  static char buf[4096];
  nlw_t w = { buf, 0 };
  uint32_t a_src = htonl(0x7f000901), a_dst = htonl(0x7f010901); /* 127.0.9.1 -> 127.1.9.1 */
  if (++anchor_sport == 0) anchor_sport = 1024;
  if (anchor_sport == 1024) anchor_dport = anchor_dport == 65535 ? 1024 : anchor_dport + 1;
  uint16_t sp = anchor_sport, dp = anchor_dport;
  struct nlmsghdr *n = begin_msg(&w, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  tuple(&w, CTA_TUPLE_ORIG, a_src, a_dst, sp, dp);
  tuple(&w, CTA_TUPLE_REPLY, a_dst, a_src, dp, sp);
  u32be(&w, CTA_TIMEOUT, 3600 + 120);
  u32be(&w, CTA_MARK, 0x5eed0000u | sp);
  struct nlattr *help = nest(&w, CTA_HELP);
  put(&w, CTA_HELP_NAME, "sip", 4);
  end(&w, help);
  end_msg(&w, n);
  for (int k = 0; k < 2; k++) {
    if (next_port < 1024 || next_port > 65534) next_port = 1024;
    uint16_t pub = next_port++;
    n = begin_msg(&w, (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_NEW, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    tuple(&w, CTA_EXPECT_MASTER, a_src, a_dst, sp, dp);
    tuple(&w, CTA_EXPECT_TUPLE, remote_ip, wan_ip, 0, pub);
    tuple(&w, CTA_EXPECT_MASK, remote_ip ? 0xffffffffu : 0, 0xffffffffu, 0, 0xffff);
    u32be(&w, CTA_EXPECT_TIMEOUT, 180);
    u32be(&w, CTA_EXPECT_CLASS, 1);
    struct nlattr *nat = nest(&w, CTA_EXPECT_NAT);
    u32be(&w, CTA_EXPECT_NAT_DIR, 1);
    tuple(&w, CTA_EXPECT_NAT_TUPLE, priv_ip, 0, (uint16_t)(priv_port + k), 0);
    end(&w, nat);
    put(&w, CTA_EXPECT_FN, "sip", 4);
    end_msg(&w, n);
  }
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  if (sendto(ct_fd, buf, w.len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) { exps_failed += 2; return; }
  static char acks[4][512];
  struct mmsghdr mm[4];
  struct iovec iov[4];
  memset(mm, 0, sizeof mm);
  for (int i = 0; i < 4; i++) { iov[i].iov_base = acks[i]; iov[i].iov_len = sizeof acks[i]; mm[i].msg_hdr.msg_iov = &iov[i]; mm[i].msg_hdr.msg_iovlen = 1; }
  int got = recvmmsg(ct_fd, mm, 4, MSG_DONTWAIT, NULL);
  for (int i = 0; i < got; i++) {
    struct nlmsghdr *r = (struct nlmsghdr *)acks[i];
    if (r->nlmsg_type != NLMSG_ERROR) continue;
    struct nlmsgerr *e = NLMSG_DATA(r);
    int is_exp = (e->msg.nlmsg_type >> 8) == NFNL_SUBSYS_CTNETLINK_EXP;
    if (is_exp) { if (e->error) exps_failed++; else exps_made++; }
    else if (!e->error) anchors++;
  }
}

/* ---- verdicts ---- */
static void tx_append(uint32_t id, const void *data, size_t len) {
  size_t need = NLMSG_ALIGN(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)) + NLA_ALIGN(NLA_HDRLEN + sizeof(struct nfqnl_msg_verdict_hdr)) + NLA_ALIGN(NLA_HDRLEN + len));
  if (tx_used + need > TX_SIZE) return;
  nlw_t w = { tx + tx_used, 0 };
  struct nlmsghdr *n = (struct nlmsghdr *)w.p;
  memset(n, 0, NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
  n->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT;
  n->nlmsg_flags = NLM_F_REQUEST;
  n->nlmsg_seq = seq++;
  struct nfgenmsg *g = NLMSG_DATA(n);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(qnum);
  w.len = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  struct nfqnl_msg_verdict_hdr vh = { htonl(NF_ACCEPT), htonl(id) };
  put(&w, NFQA_VERDICT_HDR, &vh, sizeof vh);
  put(&w, NFQA_PAYLOAD, data, len);
  n->nlmsg_len = (uint32_t)NLMSG_ALIGN(w.len);
  tx_used += NLMSG_ALIGN(w.len);
}

static void tx_flush(void) {
  if (!tx_used) return;
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  ssize_t r;
  do { r = sendto(nfq_fd(h), tx, tx_used, 0, (struct sockaddr *)&sa, sizeof sa); } while (r < 0 && errno == EINTR);
  tx_used = 0;
}

/* ---- the packet ---- */
static uint16_t udp_checksum(const uint8_t *ip, const uint8_t *udp, size_t ulen) {
  uint32_t s = 0;
  for (int i = 12; i < 20; i += 2) s += (uint32_t)(ip[i] << 8 | ip[i + 1]);
  s += IPPROTO_UDP + (uint32_t)ulen;
  for (size_t i = 0; i + 1 < ulen; i += 2) s += (uint32_t)(udp[i] << 8 | udp[i + 1]);
  if (ulen & 1) s += (uint32_t)(udp[ulen - 1] << 8);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  uint16_t c = (uint16_t)~s;
  return c ? c : 0xffff;
}

/* every occurrence of `from` in [p, p+len) replaced by `to` (same length); returns how many */
static int replace_all(uint8_t *p, size_t len, const char *from, const char *to, size_t n) {
  int k = 0;
  for (uint8_t *at = p, *e = p + len; (at = memmem(at, (size_t)(e - at), from, n)); at += n, k++) memcpy(at, to, n);
  return k;
}

static int on_packet(struct nfq_q_handle *q, struct nfgenmsg *m, struct nfq_data *nfa, void *data) {
  (void)q; (void)m; (void)data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  unsigned char *pkt = NULL;
  int len = nfq_get_payload(nfa, &pkt);
  if (!ph || len < 28) { if (ph) tx_append(ntohl(ph->packet_id), pkt, len > 0 ? (size_t)len : 0); return 0; }
  uint8_t *ip = pkt;
  size_t ihl = (size_t)(ip[0] & 15) * 4;
  if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP || (size_t)len < ihl + 8) { tx_append(ntohl(ph->packet_id), pkt, (size_t)len); return 0; }
  uint8_t *udp = ip + ihl, *sip = udp + 8;
  size_t ulen = (size_t)len - ihl, slen = ulen - 8;
  uint32_t src, dst;
  memcpy(&src, ip + 12, 4);
  memcpy(&dst, ip + 16, 4);
  int from_lan = src != wan_ip && (ntohl(src) >> 24) == 10;
  char other[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, from_lan ? (void *)&src : (void *)&dst, other, sizeof other);
  size_t olen = strlen(other);
  int changed = 0;
  if (olen == wan_len) changed = from_lan ? replace_all(sip, slen, other, wan_txt, olen) : replace_all(sip, slen, wan_txt, other, olen);
  int invite = from_lan && slen > 7 && !memcmp(sip, "INVITE ", 7);
  int answer = !from_lan && slen > 11 && !memcmp(sip, "SIP/2.0 200", 11);
  if (invite || answer) {
    const uint8_t *mline = memmem(sip, slen, "\nm=audio ", 9);
    if (mline) {
      unsigned port = 0;
      for (const uint8_t *c = mline + 9; c < sip + slen && *c >= '0' && *c <= '9'; c++) port = port * 10 + (unsigned)(*c - '0');
      /* the phone is the source of the INVITE and the destination of the answer */
      if (port && port < 65535) pin(from_lan ? src : dst, (uint16_t)port, from_lan ? 0 : src);
    }
  }
  if (changed) {
    udp[6] = udp[7] = 0;
    uint16_t c = udp_checksum(ip, udp, ulen);
    udp[6] = (uint8_t)(c >> 8);
    udp[7] = (uint8_t)c;
  }
  tx_append(ntohl(ph->packet_id), pkt, (size_t)len);
  return 0;
}

static void on_signal(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
  const char *wan = NULL;
  int num = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--queue")) num = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--wan-ip")) wan = argv[i + 1];
  }
  if (!wan || inet_pton(AF_INET, wan, &wan_ip) != 1) { fprintf(stderr, "usage: floor --queue N --wan-ip A.B.C.D\n"); return 2; }
  snprintf(wan_txt, sizeof wan_txt, "%s", wan);
  wan_len = strlen(wan_txt);
  qnum = (uint16_t)num;
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  tx = malloc(TX_SIZE);
  char *buf = malloc((size_t)RX_VEC * RX_SLOT);
  ct_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
  if (!tx || !buf || ct_fd < 0 || bind(ct_fd, (struct sockaddr *)&nl, sizeof nl) < 0) { perror("ctnetlink"); return 1; }
  int one = 1;
  setsockopt(ct_fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  h = nfq_open();
  if (!h) { perror("nfq_open"); return 1; }
  qh = nfq_create_queue(h, qnum, on_packet, NULL);
  if (!qh) { perror("nfq_create_queue"); return 1; }
  if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 0xffff) < 0) { perror("nfq_set_mode"); return 1; }
  nfq_set_queue_maxlen(qh, 4096);
  nfq_set_queue_flags(qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
  int fd = nfq_fd(h);
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  struct mmsghdr mm[RX_VEC];
  struct iovec iov[RX_VEC];
  memset(mm, 0, sizeof mm);
  for (int k = 0; k < RX_VEC; k++) {
    iov[k].iov_base = buf + (size_t)k * RX_SLOT;
    iov[k].iov_len = RX_SLOT;
    mm[k].msg_hdr.msg_iov = &iov[k];
    mm[k].msg_hdr.msg_iovlen = 1;
  }
  printf("floor ready on queue %d\n", num);
  fflush(stdout);
  uint64_t packets = 0;
  while (!stop) {
    int m = recvmmsg(fd, mm, RX_VEC, MSG_WAITFORONE, NULL);
    if (m < 0) { if (errno == EINTR || errno == ENOBUFS) continue; perror("recvmmsg"); break; }
    for (int k = 0; k < m; k++) {
      if (mm[k].msg_hdr.msg_flags & MSG_TRUNC) continue;
      struct nlmsghdr *n = (struct nlmsghdr *)iov[k].iov_base;
      if (n->nlmsg_type == NLMSG_ERROR) continue;
      nfq_handle_packet(h, iov[k].iov_base, (int)mm[k].msg_len);
      packets++;
    }
    tx_flush();
  }
  printf("{\"packets\":%llu,\"anchors\":%u,\"expectations\":%u,\"expectations_failed\":%u}\n", (unsigned long long)packets, anchors, exps_made, exps_failed);
  fflush(stdout);
  nfq_destroy_queue(qh);
  nfq_close(h);
  return 0;
}
