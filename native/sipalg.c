/*
 * sip-alg native boundary: NFQUEUE receive/verdict and raw netlink send/receive.
 * Nothing here knows SIP, NAT policy or conntrack attributes: that lives in TypeScript.
 * Context-aware (N-API), so every worker_thread can own its own queue.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, "SIPALG_NATIVE", #call " failed"); return NULL; } } while (0)

static napi_value throw_errno(napi_env env, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
  napi_value code, m, err;
  napi_create_string_utf8(env, "SIPALG_NATIVE", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, code, m, &err);
  napi_value en; napi_create_int32(env, errno, &en);
  napi_set_named_property(env, err, "errno", en);
  napi_throw(env, err);
  return NULL;
}

/* ---------------- NFQUEUE ----------------
 * One wake-up, one call into JS: every packet ready on the socket (up to RX_BATCH, while the
 * caller's receive buffer has room) is copied into that buffer and described in the caller's
 * Uint32Array [id, offset, length, indev, outdev, mark] per packet (mark: the skb's, NFQA_MARK);
 * then cb(count) runs once. The
 * verdicts JS gives during the call are queued here and leave in one sendto when it returns
 * (several NFQNL_MSG_VERDICT messages, each with its own NFQA_PAYLOAD, in one datagram are handled
 * in order by netlink_rcv_skb: net/netfilter/nfnetlink_queue.c, net/netlink/af_netlink.c). JS may
 * send them itself first with queueFlush(), which reports the ids whose verdict the kernel could
 * not be handed, so it can decide what those packets become.
 */
#define RX_BATCH 256
#define DESC_FIELDS 6
/* after the batch's descriptors, when the caller's array has room: [count, seq, errno, seq, errno, ...]
 * of the NLMSG_ERRORs this wake-up read (ctnetlink requests JS put in the verdict datagram: queueRequest) */
#define ERR_MAX 64
#define ERR_WORDS (1 + 2 * ERR_MAX)
#define TX_SIZE (1 << 20)
#define MAX_PAYLOAD 65535
/* netlink messages one recvmmsg reads at most, each into a slot of RX_SLOT bytes (a packet of
 * MAX_PAYLOAD and its nfnetlink attributes fit with room to spare) */
#define RX_VEC 8
#define RX_SLOT (128 * 1024)

typedef struct {
  napi_env env;
  struct nfq_handle *h;
  struct nfq_q_handle *qh;
  uint16_t num;
  uv_poll_t poll;
  napi_ref cb;
  napi_ref rx_ref, desc_ref;  /* keep the caller's buffers alive */
  napi_async_context actx;
  int closed;       /* queueClose() or finalizer ran */
  int poll_done;    /* uv_close callback ran */
  int finalized;    /* JS object collected */
  int in_batch;     /* cb(count) is running: verdicts are queued */
  char *buf;        /* recvmmsg slots: RX_VEC of RX_SLOT bytes */
  struct mmsghdr mm[RX_VEC];
  struct iovec iov[RX_VEC];
  uint8_t *rx; size_t rx_len; size_t rx_used;
  uint32_t *desc; uint32_t count;
  uint32_t *errs;   /* NULL when the caller's desc has no room for them */
  char *tx; size_t tx_used; uint32_t tx_msgs;
  uint32_t seq;
} queue_t;

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *m, struct nfq_data *nfa, void *data) {
  (void)qh; (void)m;
  queue_t *q = data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  unsigned char *payload = NULL;
  int len = nfq_get_payload(nfa, &payload);
  if (!ph || len < 0 || q->count >= RX_BATCH || q->rx_used + (size_t)len > q->rx_len) return 0;
  uint32_t *d = q->desc + q->count * DESC_FIELDS;
  d[0] = ntohl(ph->packet_id);
  d[1] = (uint32_t)q->rx_used;
  d[2] = (uint32_t)len;
  d[3] = nfq_get_indev(nfa);
  d[4] = nfq_get_outdev(nfa);
  d[5] = nfq_get_nfmark(nfa);
  memcpy(q->rx + q->rx_used, payload, (size_t)len);
  q->rx_used += ((size_t)len + 7) & ~(size_t)7;
  q->count++;
  return 0;
}

/*
 * appends one verdict message (nf_queue's wire format, as nfq_set_verdict2 writes it) to tx; with
 * set_mark, NFQA_MARK gives the packet the skb mark `mark` (nfqnl_recv_verdict: before the payload)
 */
static int tx_append(queue_t *q, uint32_t id, uint32_t verdict, const void *data, size_t len, int set_mark, uint32_t mark) {
  size_t need = NLMSG_ALIGN(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)) + NLA_ALIGN(NLA_HDRLEN + sizeof(struct nfqnl_msg_verdict_hdr)) + (set_mark ? NLA_ALIGN(NLA_HDRLEN + 4) : 0) + (data ? NLA_ALIGN(NLA_HDRLEN + len) : 0));
  if (q->tx_used + need > TX_SIZE) return -1;
  char *p = q->tx + q->tx_used;
  memset(p, 0, need);
  struct nlmsghdr *nlh = (struct nlmsghdr *)p;
  nlh->nlmsg_len = (uint32_t)need;
  nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = ++q->seq & 0x3fffffff; /* JS numbers its queueRequest messages from 0x40000000 */
  struct nfgenmsg *g = (struct nfgenmsg *)NLMSG_DATA(nlh);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(q->num);
  struct nlattr *a = (struct nlattr *)((char *)g + NLMSG_ALIGN(sizeof *g));
  a->nla_type = NFQA_VERDICT_HDR;
  a->nla_len = NLA_HDRLEN + sizeof(struct nfqnl_msg_verdict_hdr);
  struct nfqnl_msg_verdict_hdr vh = { htonl(verdict), htonl(id) };
  memcpy((char *)a + NLA_HDRLEN, &vh, sizeof vh);
  if (set_mark) {
    a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
    a->nla_type = NFQA_MARK;
    a->nla_len = NLA_HDRLEN + 4;
    uint32_t be = htonl(mark);
    memcpy((char *)a + NLA_HDRLEN, &be, 4);
  }
  if (data) {
    a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
    a->nla_type = NFQA_PAYLOAD;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy((char *)a + NLA_HDRLEN, data, len);
  }
  q->tx_used += need;
  q->tx_msgs++;
  return 0;
}

static int tx_send(queue_t *q, const void *p, size_t len) {
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  ssize_t n;
  do { n = sendto(nfq_fd(q->h), p, len, 0, (struct sockaddr *)&sa, sizeof sa); } while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

/*
 * Sends the queued verdicts in one datagram. If the kernel cannot take the datagram (ENOBUFS,
 * ENOMEM), each message is tried alone; the ids of those that still fail are written to `failed`
 * (at most `max`), their count returned.
 */
static uint32_t tx_flush(queue_t *q, uint32_t *failed, uint32_t max) {
  uint32_t nfail = 0;
  if (!q->tx_used || q->closed) { q->tx_used = 0; q->tx_msgs = 0; return 0; }
  if (tx_send(q, q->tx, q->tx_used) < 0) {
    for (size_t off = 0; off < q->tx_used;) {
      struct nlmsghdr *nlh = (struct nlmsghdr *)(q->tx + off);
      if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_QUEUE) {
        /* a queueRequest message: tried alone, its failure is not a packet's */
        tx_send(q, nlh, nlh->nlmsg_len);
      } else if (tx_send(q, nlh, nlh->nlmsg_len) < 0 && nfail < max) {
        struct nfqnl_msg_verdict_hdr vh;
        memcpy(&vh, (char *)NLMSG_DATA(nlh) + NLMSG_ALIGN(sizeof(struct nfgenmsg)) + NLA_HDRLEN, sizeof vh);
        failed[nfail++] = ntohl(vh.id);
      }
      off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
  }
  q->tx_used = 0;
  q->tx_msgs = 0;
  return nfail;
}

static void call_js(queue_t *q) {
  napi_env env = q->env;
  napi_value argv[1], cb, recv, result;
  napi_create_uint32(env, q->count, &argv[0]);
  napi_get_reference_value(env, q->cb, &cb);
  napi_get_global(env, &recv);
  q->in_batch = 1;
  napi_make_callback(env, q->actx, recv, cb, 1, argv, &result);
  q->in_batch = 0;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
  /* verdicts JS did not flush itself: a failure here is not reported (JS flushes when it cares) */
  if (!q->closed && q->tx_used) { uint32_t ignored[1]; tx_flush(q, ignored, 0); }
  q->count = 0;
  q->rx_used = 0;
  if (q->errs) q->errs[0] = 0;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  queue_t *q = h->data;
  if (status < 0 || q->closed) return;
  napi_handle_scope scope;
  napi_open_handle_scope(q->env, &scope);
  int fd = nfq_fd(q->h);
  /* drain the socket: one wake-up handles a burst, one call into JS per RX_BATCH packets. recvmmsg
   * reads what is ready in one system call; fewer messages than asked for means the socket was empty
   * then, so no further call only to meet EAGAIN (a recv per message did that once per wake-up:
   * ~1.3 us on a virtual machine whose system calls trap to the hypervisor) */
  for (int got = 0; got < RX_BATCH && !q->closed;) {
    int m = recvmmsg(fd, q->mm, RX_VEC, MSG_DONTWAIT, NULL);
    if (m <= 0) break; /* EAGAIN, or ENOBUFS (counted by the kernel) */
    for (int k = 0; k < m && !q->closed; k++, got++) {
      ssize_t n = q->mm[k].msg_len;
      char *b = q->iov[k].iov_base;
      /* a queued packet's message is at most MAX_PAYLOAD and its attributes: a slot always holds it */
      if (q->mm[k].msg_hdr.msg_flags & MSG_TRUNC) continue;
      struct nlmsghdr *nlh = (struct nlmsghdr *)b;
      if ((size_t)n >= NLMSG_HDRLEN + sizeof(struct nlmsgerr) && nlh->nlmsg_type == NLMSG_ERROR) {
        /* the answer to a request that failed (queueRequest's have no NLM_F_ACK: only failures answer) */
        struct nlmsgerr *e = NLMSG_DATA(nlh);
        if (q->errs && e->error && q->errs[0] < ERR_MAX) {
          uint32_t j = q->errs[0]++;
          q->errs[1 + 2 * j] = e->msg.nlmsg_seq;
          q->errs[2 + 2 * j] = (uint32_t)(-e->error);
          /* full: handed to JS now, with the packets read so far, so that no refusal is lost (a
           * pinhole JS counts as made until one comes) */
          if (q->errs[0] >= ERR_MAX) call_js(q);
        }
        continue;
      }
      nfq_handle_packet(q->h, b, (int)n);
      if (q->count >= RX_BATCH || q->rx_used + MAX_PAYLOAD + 8 > q->rx_len) call_js(q);
    }
    if (m < RX_VEC) break;
  }
  if ((q->count || (q->errs && q->errs[0])) && !q->closed) call_js(q);
  napi_close_handle_scope(q->env, scope);
}

static void free_queue(queue_t *q) {
  if (q->qh) { nfq_destroy_queue(q->qh); q->qh = NULL; }
  if (q->h) { nfq_close(q->h); q->h = NULL; }
}

static void free_mem(queue_t *q) { free(q->buf); free(q->tx); free(q); }

static void on_poll_closed(uv_handle_t *h) {
  queue_t *q = h->data;
  q->poll_done = 1;
  if (q->finalized) free_mem(q);
}

/* Stops polling and releases the netlink handles; safe to call twice. */
static void shutdown_queue(napi_env env, queue_t *q) {
  if (q->closed) return;
  if (q->tx_used) { uint32_t ignored[1]; tx_flush(q, ignored, 0); }
  q->closed = 1;
  uv_poll_stop(&q->poll);
  free_queue(q);
  napi_delete_reference(env, q->cb);
  napi_delete_reference(env, q->rx_ref);
  napi_delete_reference(env, q->desc_ref);
  napi_async_destroy(env, q->actx);
  uv_close((uv_handle_t *)&q->poll, on_poll_closed);
}

static void queue_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  queue_t *q = data;
  q->finalized = 1;
  shutdown_queue(env, q);
  if (q->poll_done) free_mem(q);
}

/*
 * queueOpen(num, failOpen, maxLen, copyRange, rx: Buffer, desc: Uint32Array, cb(count)) -> external.
 * rx should hold at least one packet of copyRange bytes; desc RX_BATCH * 5 entries.
 */
static napi_value queue_open(napi_env env, napi_callback_info info) {
  size_t argc = 7; napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) { napi_throw_type_error(env, "SIPALG_NATIVE", "queueOpen(num, failOpen, maxLen, copyRange, rx, desc, cb)"); return NULL; }
  uint32_t num, fail_open, maxlen, copy;
  CHECK(napi_get_value_uint32(env, argv[0], &num));
  CHECK(napi_get_value_uint32(env, argv[1], &fail_open));
  CHECK(napi_get_value_uint32(env, argv[2], &maxlen));
  CHECK(napi_get_value_uint32(env, argv[3], &copy));
  void *rx; size_t rx_len;
  CHECK(napi_get_buffer_info(env, argv[4], &rx, &rx_len));
  napi_typedarray_type tt; size_t dlen; void *desc; napi_value ab; size_t boff;
  CHECK(napi_get_typedarray_info(env, argv[5], &tt, &dlen, &desc, &ab, &boff));
  if (tt != napi_uint32_array || dlen < RX_BATCH * DESC_FIELDS || rx_len < MAX_PAYLOAD + 8) {
    napi_throw_range_error(env, "SIPALG_NATIVE", "queueOpen: rx must hold 65543 bytes, desc must be a Uint32Array of 1536");
    return NULL;
  }
  queue_t *q = calloc(1, sizeof *q);
  q->env = env;
  q->num = (uint16_t)num;
  q->buf = malloc((size_t)RX_VEC * RX_SLOT);
  q->tx = malloc(TX_SIZE);
  if (!q->buf || !q->tx) { free_mem(q); errno = ENOMEM; return throw_errno(env, "queueOpen"); }
  for (int k = 0; k < RX_VEC; k++) {
    q->iov[k].iov_base = q->buf + (size_t)k * RX_SLOT;
    q->iov[k].iov_len = RX_SLOT;
    q->mm[k].msg_hdr.msg_iov = &q->iov[k];
    q->mm[k].msg_hdr.msg_iovlen = 1;
  }
  q->rx = rx; q->rx_len = rx_len;
  q->desc = desc;
  q->errs = dlen >= RX_BATCH * DESC_FIELDS + ERR_WORDS ? (uint32_t *)desc + RX_BATCH * DESC_FIELDS : NULL;
  if (q->errs) q->errs[0] = 0;
  q->h = nfq_open();
  if (!q->h) { free_mem(q); return throw_errno(env, "nfq_open"); }
  nfq_bind_pf(q->h, AF_INET); /* no-op on kernels >= 3.8, needed before */
  nfq_bind_pf(q->h, AF_INET6);
  q->qh = nfq_create_queue(q->h, (uint16_t)num, on_packet, q);
  if (!q->qh) { int e = errno; free_queue(q); free_mem(q); errno = e; return throw_errno(env, "nfq_create_queue (is another process bound to this queue?)"); }
  if (nfq_set_mode(q->qh, NFQNL_COPY_PACKET, copy) < 0) { int e = errno; free_queue(q); free_mem(q); errno = e; return throw_errno(env, "nfq_set_mode"); }
  if (maxlen) nfq_set_queue_maxlen(q->qh, maxlen);
  if (fail_open) nfq_set_queue_flags(q->qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
  int one = 1;
  setsockopt(nfq_fd(q->h), SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
  int rcv = 4 << 20;
  setsockopt(nfq_fd(q->h), SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
  int snd = 4 << 20;
  setsockopt(nfq_fd(q->h), SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd);
  CHECK(napi_create_reference(env, argv[6], 1, &q->cb));
  CHECK(napi_create_reference(env, argv[4], 1, &q->rx_ref));
  CHECK(napi_create_reference(env, argv[5], 1, &q->desc_ref));
  napi_value name; napi_create_string_utf8(env, "sip-alg:nfqueue", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_async_init(env, NULL, name, &q->actx));
  uv_loop_t *loop; CHECK(napi_get_uv_event_loop(env, &loop));
  uv_poll_init(loop, &q->poll, nfq_fd(q->h));
  q->poll.data = q;
  uv_poll_start(&q->poll, UV_READABLE, on_readable);
  napi_value ext;
  CHECK(napi_create_external(env, q, queue_finalize, NULL, &ext));
  return ext;
}

static queue_t *get_queue(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

/*
 * queueVerdict(q, id, verdict, payload|null, mark?): during cb(count) it is queued for the batch's
 * one sendto (a full batch buffer is sent first); outside it (timers) it is sent at once. A mark
 * (a number >= 0) becomes the packet's skb mark (NFQA_MARK).
 */
static napi_value queue_verdict(napi_env env, napi_callback_info info) {
  size_t argc = 5; napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  queue_t *q = get_queue(env, argv[0]);
  if (!q || q->closed) { napi_throw_error(env, "SIPALG_QUEUE_CLOSED", "queue is closed"); return NULL; }
  uint32_t id, verdict;
  CHECK(napi_get_value_uint32(env, argv[1], &id));
  CHECK(napi_get_value_uint32(env, argv[2], &verdict));
  void *data = NULL; size_t len = 0;
  bool isbuf = false;
  if (argc > 3) napi_is_buffer(env, argv[3], &isbuf);
  if (isbuf) CHECK(napi_get_buffer_info(env, argv[3], &data, &len));
  if (len > MAX_PAYLOAD) { errno = EMSGSIZE; return throw_errno(env, "nfq verdict"); }
  int set_mark = 0; uint32_t mark = 0;
  napi_valuetype mt = napi_undefined;
  if (argc > 4) napi_typeof(env, argv[4], &mt);
  if (mt == napi_number) {
    int64_t m; CHECK(napi_get_value_int64(env, argv[4], &m));
    if (m >= 0 && m <= 0xffffffffLL) { set_mark = 1; mark = (uint32_t)m; }
  }
  if (q->in_batch) {
    if (tx_append(q, id, verdict, isbuf ? data : NULL, len, set_mark, mark) == 0) return NULL;
    /* the batch buffer is full: what it holds leaves now (a failure there is the caller's to see at flush) */
    uint32_t ignored[1]; tx_flush(q, ignored, 0);
    if (tx_append(q, id, verdict, isbuf ? data : NULL, len, set_mark, mark) == 0) return NULL;
  }
  if ((set_mark ? nfq_set_verdict2(q->qh, id, verdict, mark, (uint32_t)len, data) : nfq_set_verdict(q->qh, id, verdict, (uint32_t)len, data)) < 0) return throw_errno(env, "nfq_set_verdict");
  return NULL;
}

/*
 * queueRequest(q, msgs) -> bool: during cb(count), netlink messages of another nfnetlink subsystem
 * (ctnetlink: the queue's socket is a NETLINK_NETFILTER one) join the batch's datagram, in the
 * order given among its verdicts (net/netfilter/nfnetlink.c dispatches each by subsystem, in order);
 * their failures come back as NLMSG_ERRORs, reported after the descriptors at the next wake-up.
 * false outside a batch, or when they do not fit: the caller sends them itself.
 */
static napi_value queue_request(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  queue_t *q = get_queue(env, argv[0]);
  napi_value r;
  void *data = NULL; size_t len = 0;
  bool ok = false;
  if (q && !q->closed && q->in_batch && q->errs && argc > 1 && napi_get_buffer_info(env, argv[1], &data, &len) == napi_ok && len >= NLMSG_HDRLEN && len <= 65536) {
    size_t need = NLMSG_ALIGN(len);
    if (q->tx_used + need > TX_SIZE) { uint32_t ignored[1]; tx_flush(q, ignored, 0); }
    if (q->tx_used + need <= TX_SIZE) {
      memset(q->tx + q->tx_used, 0, need);
      memcpy(q->tx + q->tx_used, data, len);
      q->tx_used += need;
      q->tx_msgs++;
      ok = true;
    }
  }
  napi_get_boolean(env, ok, &r);
  return r;
}

/* queueFlush(q) -> Uint32Array of the ids whose verdict could not be sent, or null */
static napi_value queue_flush(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  queue_t *q = get_queue(env, argv[0]);
  napi_value r;
  napi_get_null(env, &r);
  if (!q || q->closed) return r;
  uint32_t failed[RX_BATCH * 2];
  uint32_t n = tx_flush(q, failed, RX_BATCH * 2);
  if (!n) return r;
  napi_value ab; void *p;
  CHECK(napi_create_arraybuffer(env, n * 4, &p, &ab));
  memcpy(p, failed, n * 4);
  CHECK(napi_create_typedarray(env, napi_uint32_array, n, ab, 0, &r));
  return r;
}

static napi_value queue_close(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  queue_t *q = get_queue(env, argv[0]);
  if (q) shutdown_queue(env, q);
  return NULL;
}

/* ---------------- raw netlink ---------------- */
/* netlinkOpen(protocol) -> fd */
static napi_value nl_open(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t proto; CHECK(napi_get_value_int32(env, argv[0], &proto));
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) return throw_errno(env, "socket(AF_NETLINK)");
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { int e = errno; close(fd); errno = e; return throw_errno(env, "bind(AF_NETLINK)"); }
  int rcv = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  /* ACKs and errors carry only the request's header, not a copy of its attributes */
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  napi_value r; napi_create_int32(env, fd, &r);
  return r;
}

/* netlinkSend(fd, buffer) -> bytes */
static napi_value nl_send(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd; CHECK(napi_get_value_int32(env, argv[0], &fd));
  void *data; size_t len; CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  ssize_t n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
  if (n < 0) return throw_errno(env, "sendto(netlink)");
  napi_value r; napi_create_int32(env, (int32_t)n, &r);
  return r;
}

/* netlinkRecv(fd, timeoutMs) -> Buffer | null (timeout) */
static napi_value nl_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, timeout; CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_int32(env, argv[1], &timeout));
  struct pollfd p = { .fd = fd, .events = POLLIN };
  int pr;
  do { pr = poll(&p, 1, timeout); } while (pr < 0 && errno == EINTR);
  if (pr < 0) return throw_errno(env, "poll(netlink)");
  napi_value r;
  if (pr == 0) { napi_get_null(env, &r); return r; }
  static __thread char buf[65536];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n < 0) return throw_errno(env, "recv(netlink)");
  void *copy;
  CHECK(napi_create_buffer_copy(env, (size_t)n, buf, &copy, &r));
  return r;
}

/*
 * netlinkTransact(fd, buffer) -> Buffer: sendto, then every reply already queued, in one recvmmsg
 * (MSG_DONTWAIT). A request to a kernel netlink family is handled inside sendto
 * (net/netlink/af_netlink.c netlink_unicast_kernel calls the family's input synchronously), so its
 * ACKs and errors are queued when sendto returns: one send and one receive syscall for a batch,
 * instead of a poll and a recv per reply. The replies' datagrams are returned back to back (each
 * holds whole, aligned netlink messages); empty when none was queued (the caller then waits with
 * netlinkRecv).
 */
#define TX_MAX 64
static napi_value nl_transact(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd; CHECK(napi_get_value_int32(env, argv[0], &fd));
  void *data; size_t len; CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  if (sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) return throw_errno(env, "sendto(netlink)");
  static __thread char bufs[TX_MAX][2048];
  static __thread char out[TX_MAX * 2048];
  struct mmsghdr msgs[TX_MAX];
  struct iovec iov[TX_MAX];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < TX_MAX; i++) { iov[i].iov_base = bufs[i]; iov[i].iov_len = sizeof bufs[i]; msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1; }
  int n = recvmmsg(fd, msgs, TX_MAX, MSG_DONTWAIT, NULL);
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    size_t l = msgs[i].msg_len;
    if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue; /* cannot be an ACK or error of ours */
    memcpy(out + total, bufs[i], l);
    total += (l + 3) & ~(size_t)3;
  }
  napi_value r; void *copy;
  CHECK(napi_create_buffer_copy(env, total, out, &copy, &r));
  return r;
}

static napi_value nl_close(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd; CHECK(napi_get_value_int32(env, argv[0], &fd));
  if (fd >= 0) close(fd);
  return NULL;
}

/*
 * threadSched(policy, priority) -> 0 or errno: the calling thread's scheduling policy
 * (sched_setscheduler(0, ...) acts on the calling thread alone on Linux; SCHED_OTHER = 0,
 * SCHED_FIFO = 1, SCHED_RR = 2, SCHED_BATCH = 3). Returns the errno instead of throwing: the
 * caller decides whether a refusal (EPERM without CAP_SYS_NICE) matters.
 */
static napi_value thread_sched(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t policy, prio; CHECK(napi_get_value_int32(env, argv[0], &policy));
  CHECK(napi_get_value_int32(env, argv[1], &prio));
  struct sched_param sp = { .sched_priority = prio };
  int r = sched_setscheduler(0, policy, &sp) == 0 ? 0 : errno;
  napi_value out; napi_create_int32(env, r, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "queueOpen", NULL, queue_open, NULL, NULL, NULL, napi_default, NULL },
    { "queueVerdict", NULL, queue_verdict, NULL, NULL, NULL, napi_default, NULL },
    { "queueFlush", NULL, queue_flush, NULL, NULL, NULL, napi_default, NULL },
    { "queueClose", NULL, queue_close, NULL, NULL, NULL, napi_default, NULL },
    { "netlinkOpen", NULL, nl_open, NULL, NULL, NULL, napi_default, NULL },
    { "netlinkSend", NULL, nl_send, NULL, NULL, NULL, napi_default, NULL },
    { "queueRequest", NULL, queue_request, NULL, NULL, NULL, napi_default, NULL },
    { "netlinkRecv", NULL, nl_recv, NULL, NULL, NULL, napi_default, NULL },
    { "netlinkTransact", NULL, nl_transact, NULL, NULL, NULL, napi_default, NULL },
    { "netlinkClose", NULL, nl_close, NULL, NULL, NULL, napi_default, NULL },
    { "threadSched", NULL, thread_sched, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
