/*
 * sluice_sink.c — sluice-sink, a fast io_uring SMTP sink that plays the
 * receiving providers.
 *
 * Why it exists: sluice's tests and benchmarks need receivers that accept
 * mail as fast as the sender can push it, and that misbehave on purpose the
 * way Gmail, Yahoo or a small-business MX do — greeting refusals, unknown
 * users, per-IP rate limits, "too many messages per connection", tarpits,
 * random 4xx — so that sluice's shaping, retry and policy code can be
 * exercised without the Internet. Postfix's smtp-sink is fast but cannot be
 * scripted per domain; this one reads a small rules file (bench/sink_rules.h,
 * docs/sink.md) and writes a JSON line per accepted message, which the e2e
 * tests use as the ground truth of what was delivered.
 *
 * Shape: one io_uring event loop per thread (-t N; SO_REUSEPORT spreads
 * connections), shared-nothing apart from the rules' rate counters (one
 * mutex, taken at the end of DATA only when rate-per-ip rules exist), the
 * message sequence number and the output files. Each connection is
 * half-duplex: at any moment exactly one of recv, send or a tarpit timer is
 * in flight for it, so a completion can free its connection. Received bytes
 * come from a provided-buffer ring and go back to it at once; a connection
 * keeps only what is left of a partial command line, so thousands of idle
 * connections cost a few hundred bytes each. Pipelined commands are all
 * answered with one send.
 *
 * The SMTP server logic (session_*) is written against byte slices and an
 * output buffer; the io_uring plumbing (conn_*, worker_*) owns sockets and
 * time. STARTTLS uses dataplane/tls.h (sans-I/O OpenSSL).
 */
#include "buf.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "sink_rules.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SINK_RING_ENTRIES 4096
#define SINK_BUF_COUNT 1024 /* provided receive buffers per thread */
#define SINK_BUF_SIZE 16384
#define SINK_BUF_GROUP 1
#define SINK_MAX_SIZE 52428800u   /* advertised SIZE and enforced limit */
#define SINK_LINE_MAX 4096        /* longest command line */
#define SINK_MAX_RCPTS 1000       /* per transaction */
#define SINK_HEADER_CAP 65536     /* header bytes kept to find Message-ID */
#define SINK_LOG_FLUSH (256u << 10)
#define SINK_MAX_THREADS 64
#define SINK_MAX_LISTEN 64

/* ---- process-wide state ----------------------------------------------- */

union sk_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

struct listen_spec {
	union sk_addr addr;
	socklen_t len;
	bool wildcard;
};

/* Counters of one worker: written by it alone, read by the stats writer. */
struct counters {
	_Atomic uint64_t connections, active, messages, recipients, bytes,
		rejected_rcpts, deferred, rejected_messages, refused, dropped,
		tls, commands;
} __attribute__((aligned(64)));

struct worker;

struct sink {
	struct listen_spec listen[SINK_MAX_LISTEN];
	size_t nlisten;
	struct sink_rules *rules;
	pthread_mutex_t rate_lock;
	int save_dir_fd; /* -1 without -o */
	int log_fd;      /* -1 without -L */
	int conn_log_fd; /* -1 without --conn-log */
	const char *stats_path;
	struct tls_ctx *tls;
	bool quiet;
	unsigned nthreads;
	uint64_t seed;
	char hostname[256];
	struct sl_buf ehlo_plain, ehlo_tls; /* the whole EHLO reply */
	_Atomic uint64_t seq;
	_Atomic bool stop;
	struct worker *workers;
	pthread_barrier_t ready;
	_Atomic int setup_err;
	struct timespec started;
};

/* ---- per-thread state ------------------------------------------------- */

/* What a completion is about: the low 3 bits of user_data. */
enum op {
	OP_NONE = 0, /* close and other fire-and-forget completions */
	OP_ACCEPT,
	OP_RECV,
	OP_SEND,
	OP_DELAY,
	OP_TICK,
	OP_SIGNAL,
	OP_WAKE,
};

struct listener {
	struct worker *w;
	int fd;
	bool multishot;
	union sk_addr addr; /* actual bound address */
	bool wildcard;
	char name[INET6_ADDRSTRLEN + 8];
};

struct conn;

struct worker {
	struct sink *sink;
	unsigned id;
	pthread_t thread;
	struct io_uring ring;
	bool ring_ok;
	struct io_uring_buf_ring *br;
	size_t br_size;
	char *bufs;
	struct listener lis[SINK_MAX_LISTEN];
	size_t nlis;
	int wake_fd;
	uint64_t wake_val;
	int sig_fd; /* worker 0 only, else -1 */
	struct signalfd_siginfo si;
	struct __kernel_timespec tick;
	struct conn *conns; /* doubly linked list of live connections */
	struct sl_buf log;
	struct sl_buf plain; /* scratch: decrypted TLS input */
	uint64_t rng;
	bool stop;
	bool log_failed;
	struct counters cnt;
};

#define CNT_ADD(w, field, n) \
	atomic_store_explicit(&(w)->cnt.field, \
			      atomic_load_explicit(&(w)->cnt.field, \
						   memory_order_relaxed) + (n), \
			      memory_order_relaxed)
#define CNT_GET(w, field) \
	atomic_load_explicit(&(w)->cnt.field, memory_order_relaxed)

/* ---- connection state --------------------------------------------------- */

enum sess_state { S_CMD, S_DATA };
enum tls_state { T_NONE, T_HANDSHAKE, T_UP };
/* DATA terminator scanner: mid-line, after CR, beginning of line, after a
 * line-initial dot, after ".\r". */
enum data_state { D_MID, D_CR, D_BOL, D_DOT, D_DOTCR };

struct conn {
	struct worker *w;
	struct listener *lis;
	struct conn *prev, *next;
	int fd;
	enum sess_state state;
	enum data_state dstate;
	enum tls_state tls_state;
	struct tls_conn *tls;
	bool closing;       /* close once the output is sent */
	bool starttls;      /* start TLS once the 220 is sent */
	bool mail;          /* inside a transaction */
	bool capture;       /* keep message bytes (save or log) */
	bool too_big;
	bool have_local, have_peer;
	uint32_t rcpts;     /* accepted RCPTs of this transaction */
	uint32_t msgs;      /* DATA ends on this connection */
	uint32_t cmds;      /* commands on this connection */
	uint32_t delay_ms;  /* tarpit owed before the next send */
	uint64_t size;      /* unstuffed message size so far */
	struct sink_match match;
	char domain[256];   /* current domain (last RCPT) */
	union sk_addr local, peer;
	struct sl_buf in;   /* unprocessed input: a partial command line */
	struct sl_buf out;  /* replies (plaintext) */
	struct sl_buf wire; /* ciphertext to send under TLS */
	struct sl_buf *tx;  /* the buffer being sent */
	struct sl_buf msg;  /* message bytes kept for -o / Message-ID */
	struct sl_buf helo, from, rcpt_json;
	struct __kernel_timespec delay_ts;
	struct timespec opened, last_in; /* accept, last bytes received */
};

static inline uint64_t tag(void *p, enum op op)
{
	return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* "ip" or "ip:port" / "[ip6]:port"; IPv4-mapped IPv6 shown as IPv4. */
static void addr_format(const union sk_addr *a, bool port, char *out,
			size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned p = 0;
	bool v6 = false;

	if (a->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &a->in.sin_addr, ip, sizeof ip);
		p = ntohs(a->in.sin_port);
	} else if (a->sa.sa_family == AF_INET6) {
		const struct in6_addr *x = &a->in6.sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(x)) {
			inet_ntop(AF_INET, x->s6_addr + 12, ip, sizeof ip);
		} else {
			inet_ntop(AF_INET6, x, ip, sizeof ip);
			v6 = true;
		}
		p = ntohs(a->in6.sin6_port);
	}
	if (!port)
		snprintf(out, cap, "%s", ip);
	else if (v6)
		snprintf(out, cap, "[%s]:%u", ip, p);
	else
		snprintf(out, cap, "%s:%u", ip, p);
}

static struct io_uring_sqe *get_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe; /* non-NULL: the SQ was just emptied */
}

/* ---- output files ------------------------------------------------------- */

static void log_flush(struct worker *w)
{
	const char *p = sl_buf_head(&w->log);
	size_t n = sl_buf_avail(&w->log);

	while (n) {
		ssize_t k = write(w->sink->log_fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			if (!w->log_failed)
				sl_err("log write: %s", strerror(errno));
			w->log_failed = true;
			break;
		}
		p += k;
		n -= (size_t)k;
	}
	sl_buf_reset(&w->log);
}

static void stats_write(struct sink *s)
{
	uint64_t v[12] = { 0 };
	char tmp[PATH_MAX], text[1024];
	struct timespec now;
	double up;
	int fd, n;

	if (!s->stats_path)
		return;
	for (unsigned i = 0; i < s->nthreads; i++) {
		struct worker *w = &s->workers[i];

		v[0] += CNT_GET(w, connections);
		v[1] += CNT_GET(w, active);
		v[2] += CNT_GET(w, messages);
		v[3] += CNT_GET(w, recipients);
		v[4] += CNT_GET(w, bytes);
		v[5] += CNT_GET(w, rejected_rcpts);
		v[6] += CNT_GET(w, deferred);
		v[7] += CNT_GET(w, rejected_messages);
		v[8] += CNT_GET(w, refused);
		v[9] += CNT_GET(w, dropped);
		v[10] += CNT_GET(w, tls);
		v[11] += CNT_GET(w, commands);
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	up = (double)(now.tv_sec - s->started.tv_sec) +
	     (double)(now.tv_nsec - s->started.tv_nsec) / 1e9;
	n = snprintf(text, sizeof text,
		     "{\"connections\":%llu,\"active_connections\":%llu,"
		     "\"messages\":%llu,\"recipients\":%llu,\"bytes\":%llu,"
		     "\"rejected_rcpts\":%llu,\"deferred\":%llu,"
		     "\"rejected_messages\":%llu,\"refused_connections\":%llu,"
		     "\"dropped_connections\":%llu,\"tls_sessions\":%llu,"
		     "\"commands\":%llu,\"uptime\":%.3f,\"threads\":%u}\n",
		     (unsigned long long)v[0], (unsigned long long)v[1],
		     (unsigned long long)v[2], (unsigned long long)v[3],
		     (unsigned long long)v[4], (unsigned long long)v[5],
		     (unsigned long long)v[6], (unsigned long long)v[7],
		     (unsigned long long)v[8], (unsigned long long)v[9],
		     (unsigned long long)v[10], (unsigned long long)v[11], up,
		     s->nthreads);
	snprintf(tmp, sizeof tmp, "%s.tmp", s->stats_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		sl_err("stats %s: %s", tmp, strerror(errno));
		return;
	}
	if (write(fd, text, (size_t)n) != n || close(fd) < 0) {
		sl_err("stats %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return;
	}
	if (rename(tmp, s->stats_path) < 0)
		sl_err("stats %s: %s", s->stats_path, strerror(errno));
}

/* ---- session: replies --------------------------------------------------- */

static void conn_local(struct conn *c)
{
	socklen_t len = sizeof c->local;

	if (c->have_local)
		return;
	if (!c->lis->wildcard ||
	    getsockname(c->fd, &c->local.sa, &len) < 0)
		c->local = c->lis->addr;
	c->have_local = true;
}

static void conn_peer(struct conn *c)
{
	socklen_t len = sizeof c->peer;

	if (c->have_peer)
		return;
	if (getpeername(c->fd, &c->peer.sa, &len) < 0)
		memset(&c->peer, 0, sizeof c->peer);
	c->have_peer = true;
}

/* Append one reply (line without CRLF, may hold inner CRLFs). A 421 closes
 * the connection once it is sent; a tarpit rule adds its delay. */
static void reply(struct conn *c, const char *line, size_t len)
{
	struct sink_rules *rules = c->w->sink->rules;

	if (sl_buf_append(&c->out, line, len) ||
	    sl_buf_append(&c->out, "\r\n", 2)) {
		c->closing = true;
		return;
	}
	if (len >= 3 && !memcmp(line, "421", 3))
		c->closing = true;
	if (rules)
		c->delay_ms += sink_rules_delay_ms(rules, &c->match);
}

#define REPLY(c, lit) reply(c, lit, sizeof(lit) - 1)

static void reply_str(struct conn *c, const char *line)
{
	reply(c, line, strlen(line));
}

/* ---- session: transaction bookkeeping ----------------------------------- */

static void session_reset(struct conn *c)
{
	c->mail = false;
	c->rcpts = 0;
	c->size = 0;
	c->too_big = false;
	sl_buf_reset(&c->from);
	sl_buf_reset(&c->rcpt_json);
	sl_buf_reset(&c->msg);
}

static void set_domain(struct conn *c, const char *addr, size_t len)
{
	const char *at = NULL;
	size_t n;

	for (size_t i = len; i > 0; i--) {
		if (addr[i - 1] == '@') {
			at = addr + i - 1;
			break;
		}
	}
	if (!at)
		return;
	n = len - (size_t)(at + 1 - addr);
	if (n >= sizeof c->domain)
		n = sizeof c->domain - 1;
	memcpy(c->domain, at + 1, n);
	c->domain[n] = '\0';
	c->match.domain = c->domain;
	c->match.domain_len = n;
}

/*
 * The address of "FROM:<addr> params" / "TO:<addr>"; arg points after the
 * verb. Returns false on a syntax error.
 */
static bool parse_path(const char *arg, size_t len, const char *kw,
		       const char **addr, size_t *alen, const char **rest,
		       size_t *rlen)
{
	size_t kwlen = strlen(kw), i = 0, start, end;

	while (i < len && arg[i] == ' ')
		i++;
	if (len - i < kwlen || strncasecmp(arg + i, kw, kwlen))
		return false;
	i += kwlen;
	while (i < len && arg[i] == ' ')
		i++;
	if (i < len && arg[i] == '<') {
		start = ++i;
		while (i < len && arg[i] != '>')
			i++;
		if (i == len)
			return false;
		end = i++;
	} else {
		start = i;
		while (i < len && arg[i] != ' ')
			i++;
		end = i;
		if (end == start)
			return false;
	}
	*addr = arg + start;
	*alen = end - start;
	*rest = arg + i;
	*rlen = len - i;
	return true;
}

/* SIZE=N among the MAIL parameters; 0 if absent. */
static uint64_t size_param(const char *p, size_t len)
{
	for (size_t i = 0; i + 5 <= len; i++) {
		if ((i == 0 || p[i - 1] == ' ') && !strncasecmp(p + i, "SIZE=", 5)) {
			uint64_t v = 0;

			for (i += 5; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
				if (v > UINT64_MAX / 20)
					return UINT64_MAX;
				v = v * 10 + (uint64_t)(p[i] - '0');
			}
			return v;
		}
	}
	return 0;
}

static void json_field(struct sl_buf *b, const char *key, const char *v,
		       size_t len)
{
	sl_buf_appendf(b, ",\"%s\":", key);
	json_append_stringn(b, v, len);
}

/* ---- session: commands -------------------------------------------------- */

static void cmd_helo(struct conn *c, const char *arg, size_t len, bool ehlo)
{
	struct sink *s = c->w->sink;
	const struct sl_buf *r;

	while (len && *arg == ' ')
		arg++, len--;
	if (!len) {
		REPLY(c, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	sl_buf_reset(&c->helo);
	sl_buf_append(&c->helo, arg, len > 255 ? 255 : len);
	session_reset(c);
	if (!ehlo) {
		char line[300];

		reply(c, line, (size_t)snprintf(line, sizeof line, "250 %s",
						 s->hostname));
		return;
	}
	r = s->tls && c->tls_state == T_NONE ? &s->ehlo_tls : &s->ehlo_plain;
	reply(c, sl_buf_head(r), sl_buf_avail(r));
}

static void cmd_mail(struct conn *c, const char *arg, size_t len)
{
	struct sink_rules *rules = c->w->sink->rules;
	const char *addr, *rest;
	size_t alen, rlen;
	uint32_t max;

	if (c->mail) {
		REPLY(c, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (!parse_path(arg, len, "FROM:", &addr, &alen, &rest, &rlen)) {
		REPLY(c, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (rules) {
		max = sink_rules_max_msgs(rules, &c->match);
		if (max && c->msgs >= max) {
			CNT_ADD(c->w, deferred, 1);
			REPLY(c, "421 4.7.0 Too many messages, closing");
			return;
		}
	}
	if (size_param(rest, rlen) > SINK_MAX_SIZE) {
		REPLY(c, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	session_reset(c);
	c->mail = true;
	if (c->w->sink->log_fd >= 0)
		sl_buf_append(&c->from, addr, alen);
	REPLY(c, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct conn *c, const char *arg, size_t len)
{
	struct sink *s = c->w->sink;
	char line[SINK_REPLY_MAX];
	const char *addr, *rest;
	size_t alen, rlen;
	int code = 0;

	if (!c->mail) {
		REPLY(c, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!parse_path(arg, len, "TO:", &addr, &alen, &rest, &rlen) || !alen) {
		REPLY(c, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (c->rcpts >= SINK_MAX_RCPTS) {
		REPLY(c, "452 4.5.3 Error: too many recipients");
		return;
	}
	set_domain(c, addr, alen);
	if (s->rules)
		code = sink_rules_rcpt(s->rules, &c->match, addr, alen,
				       &c->w->rng, line, sizeof line);
	if (code) {
		if (code / 100 == 4)
			CNT_ADD(c->w, deferred, 1);
		else if (code / 100 == 5)
			CNT_ADD(c->w, rejected_rcpts, 1);
		reply_str(c, line);
		return;
	}
	c->rcpts++;
	if (s->log_fd >= 0) {
		if (sl_buf_avail(&c->rcpt_json))
			sl_buf_append(&c->rcpt_json, ",", 1);
		json_append_stringn(&c->rcpt_json, addr, alen);
	}
	REPLY(c, "250 2.1.5 Ok");
}

static void cmd_data(struct conn *c, size_t arglen)
{
	struct sink *s = c->w->sink;

	if (arglen) {
		REPLY(c, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!c->mail) {
		REPLY(c, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (!c->rcpts) {
		REPLY(c, "554 5.5.1 Error: no valid recipients");
		return;
	}
	c->state = S_DATA;
	c->dstate = D_BOL;
	c->size = 0;
	c->capture = s->save_dir_fd >= 0 || s->log_fd >= 0;
	sl_buf_reset(&c->msg);
	REPLY(c, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_starttls(struct conn *c, size_t arglen)
{
	if (arglen) {
		REPLY(c, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (!c->w->sink->tls) {
		REPLY(c, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (c->tls_state != T_NONE) {
		REPLY(c, "554 5.5.1 Error: TLS already active");
		return;
	}
	REPLY(c, "220 2.0.0 Ready to start TLS");
	c->starttls = true;
}

static bool verb_is(const char *p, size_t len, const char *verb)
{
	size_t n = strlen(verb);

	return len == n && !strncasecmp(p, verb, n);
}

/* One command line, without its line ending. */
static void session_command(struct conn *c, const char *p, size_t len)
{
	struct sink_rules *rules = c->w->sink->rules;
	size_t vlen = 0;
	const char *arg;
	size_t alen;

	c->cmds++;
	CNT_ADD(c->w, commands, 1);
	if (rules) {
		uint32_t n = sink_rules_disconnect_after(rules, &c->match);

		if (n && c->cmds >= n) {
			CNT_ADD(c->w, dropped, 1);
			c->closing = true;
			return;
		}
	}
	while (vlen < len && p[vlen] != ' ')
		vlen++;
	arg = p + vlen;
	alen = len - vlen;
	if (alen && *arg == ' ')
		arg++, alen--;
	if (verb_is(p, vlen, "MAIL"))
		cmd_mail(c, arg, alen);
	else if (verb_is(p, vlen, "RCPT"))
		cmd_rcpt(c, arg, alen);
	else if (verb_is(p, vlen, "DATA"))
		cmd_data(c, alen);
	else if (verb_is(p, vlen, "EHLO"))
		cmd_helo(c, arg, alen, true);
	else if (verb_is(p, vlen, "HELO"))
		cmd_helo(c, arg, alen, false);
	else if (verb_is(p, vlen, "RSET")) {
		session_reset(c);
		REPLY(c, "250 2.0.0 Ok");
	} else if (verb_is(p, vlen, "NOOP"))
		REPLY(c, "250 2.0.0 Ok");
	else if (verb_is(p, vlen, "QUIT")) {
		REPLY(c, "221 2.0.0 Bye");
		c->closing = true;
	} else if (verb_is(p, vlen, "STARTTLS"))
		cmd_starttls(c, alen);
	else if (verb_is(p, vlen, "VRFY"))
		REPLY(c, "252 2.0.0 Cannot VRFY user");
	else if (!len)
		REPLY(c, "500 5.5.2 Error: bad syntax");
	else
		REPLY(c, "502 5.5.2 Error: command not recognized");
}

/* ---- session: message content ------------------------------------------- */

static void body_emit(struct conn *c, const char *p, size_t n)
{
	size_t keep = n;

	c->size += n;
	if (c->size > SINK_MAX_SIZE)
		c->too_big = true;
	if (!c->capture || c->too_big)
		return;
	if (c->w->sink->save_dir_fd < 0) {
		/* logging only: the header section is enough */
		if (c->msg.len >= SINK_HEADER_CAP)
			return;
		if (keep > SINK_HEADER_CAP - c->msg.len)
			keep = SINK_HEADER_CAP - c->msg.len;
	}
	if (sl_buf_append(&c->msg, p, keep))
		c->capture = false;
}

/*
 * Consume message bytes up to and including the CRLF.CRLF terminator,
 * emitting the dot-unstuffed content. Returns the bytes consumed; *end is
 * set when the terminator was seen.
 */
static size_t data_scan(struct conn *c, const char *p, size_t n, bool *end)
{
	size_t i = 0, seg = 0;
	const char *cr;

	*end = false;
	while (i < n) {
		switch (c->dstate) {
		case D_MID:
			cr = memchr(p + i, '\r', n - i);
			if (!cr) {
				i = n;
				break;
			}
			i = (size_t)(cr - p) + 1;
			c->dstate = D_CR;
			break;
		case D_CR:
			if (p[i] == '\n')
				c->dstate = D_BOL;
			else if (p[i] != '\r')
				c->dstate = D_MID;
			i++;
			break;
		case D_BOL:
			if (p[i] == '.') {
				body_emit(c, p + seg, i - seg);
				seg = ++i;
				c->dstate = D_DOT;
			} else {
				c->dstate = D_MID;
			}
			break;
		case D_DOT:
			if (p[i] == '\r') {
				body_emit(c, p + seg, i - seg);
				seg = ++i; /* hold the CR back */
				c->dstate = D_DOTCR;
			} else {
				c->dstate = D_MID;
			}
			break;
		case D_DOTCR:
			if (p[i] == '\n') {
				*end = true;
				return i + 1;
			}
			body_emit(c, "\r", 1); /* ".\rX": the CR was content */
			c->dstate = D_CR;
			break;
		}
	}
	body_emit(c, p + seg, n - seg);
	return n;
}

/* The Message-ID header value of the header section in p, or NULL. */
static const char *find_message_id(const char *p, size_t n, size_t *len)
{
	size_t i = 0;

	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - p) : n, a, b;

		if (end == i || (end == i + 1 && p[i] == '\r'))
			return NULL; /* end of the header section */
		if (end - i >= 11 && !strncasecmp(p + i, "Message-ID:", 11)) {
			a = i + 11;
			b = end;
			/* a folded value continues on lines starting with WSP */
			while (b + 1 < n && (p[b + 1] == ' ' || p[b + 1] == '\t')) {
				nl = memchr(p + b + 1, '\n', n - b - 1);
				b = nl ? (size_t)(nl - p) : n;
			}
			while (a < b && (p[a] == ' ' || p[a] == '\t' ||
					 p[a] == '\r' || p[a] == '\n'))
				a++;
			while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' ||
					 p[b - 1] == '\r' || p[b - 1] == '\n'))
				b--;
			*len = b - a;
			return p + a;
		}
		i = end + 1;
	}
	return NULL;
}

static void message_log(struct conn *c, uint64_t seq)
{
	struct worker *w = c->w;
	struct sl_buf *b = &w->log;
	char src[INET6_ADDRSTRLEN + 8], dst[INET6_ADDRSTRLEN + 8];
	const char *mid;
	struct timespec ts;
	size_t midlen = 0;

	conn_peer(c);
	conn_local(c);
	addr_format(&c->peer, false, src, sizeof src);
	addr_format(&c->local, true, dst, sizeof dst);
	clock_gettime(CLOCK_REALTIME, &ts);
	mid = find_message_id(sl_buf_head(&c->msg), sl_buf_avail(&c->msg),
			      &midlen);
	sl_buf_appendf(b, "{\"time\":%lld.%06ld,\"seq\":%llu",
		       (long long)ts.tv_sec, ts.tv_nsec / 1000,
		       (unsigned long long)seq);
	if (mid)
		json_field(b, "message_id", mid, midlen);
	else
		sl_buf_append(b, ",\"message_id\":null", 18);
	json_field(b, "src", src, strlen(src));
	json_field(b, "dst", dst, strlen(dst));
	json_field(b, "helo", sl_buf_head(&c->helo), sl_buf_avail(&c->helo));
	json_field(b, "mail_from", sl_buf_head(&c->from), sl_buf_avail(&c->from));
	sl_buf_append(b, ",\"rcpts\":[", 10);
	sl_buf_append(b, sl_buf_head(&c->rcpt_json), sl_buf_avail(&c->rcpt_json));
	sl_buf_appendf(b, "],\"size\":%llu,\"tls\":%s}\n",
		       (unsigned long long)c->size,
		       c->tls_state == T_UP ? "true" : "false");
	if (sl_buf_avail(b) >= SINK_LOG_FLUSH)
		log_flush(w);
}

static void message_save(struct conn *c, uint64_t seq)
{
	int dir = c->w->sink->save_dir_fd, fd;
	const char *p = sl_buf_head(&c->msg);
	size_t n = sl_buf_avail(&c->msg);
	char name[32];

	snprintf(name, sizeof name, "%llu.eml", (unsigned long long)seq);
	fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		sl_err("save %s: %s", name, strerror(errno));
		return;
	}
	while (n) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			sl_err("save %s: %s", name, strerror(errno));
			break;
		}
		p += k;
		n -= (size_t)k;
	}
	close(fd);
}

/* The terminator arrived: decide, record and reply. */
static void session_data_end(struct conn *c)
{
	struct worker *w = c->w;
	struct sink *s = w->sink;
	char line[SINK_REPLY_MAX];
	uint64_t seq;
	int code = 0;

	c->state = S_CMD;
	c->msgs++;
	if (c->too_big) {
		code = 552;
		snprintf(line, sizeof line,
			 "552 5.3.4 Message size exceeds fixed limit");
	} else if (s->rules) {
		bool rate = sink_rules_use_rate(s->rules);

		if (rate) {
			conn_peer(c);
			pthread_mutex_lock(&s->rate_lock);
		}
		code = sink_rules_data_end(s->rules, &c->match,
					   rate ? &c->peer.sa : NULL,
					   rate ? now_mono_ms() : 0, line,
					   sizeof line);
		if (rate)
			pthread_mutex_unlock(&s->rate_lock);
		if (code < 0) {
			code = 451;
			snprintf(line, sizeof line,
				 "451 4.3.0 Error: out of memory");
		}
	}
	if (code && code / 100 != 2) {
		if (code / 100 == 4)
			CNT_ADD(w, deferred, 1);
		else
			CNT_ADD(w, rejected_messages, 1);
		reply_str(c, line);
		session_reset(c);
		return;
	}
	seq = atomic_fetch_add_explicit(&s->seq, 1, memory_order_relaxed) + 1;
	CNT_ADD(w, messages, 1);
	CNT_ADD(w, recipients, c->rcpts);
	CNT_ADD(w, bytes, c->size);
	if (s->save_dir_fd >= 0)
		message_save(c, seq);
	if (s->log_fd >= 0)
		message_log(c, seq);
	if (code)
		reply_str(c, line);
	else
		reply(c, line, (size_t)snprintf(line, sizeof line,
						 "250 2.0.0 Ok: queued as %llu",
						 (unsigned long long)seq));
	session_reset(c);
}

/*
 * Feed plaintext input; returns the bytes used. A partial command line is
 * left unused. Once the connection is closing or switching to TLS, the rest
 * is discarded (counted as used): nothing may be pipelined past STARTTLS.
 */
static size_t session_feed(struct conn *c, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && !c->closing && !c->starttls) {
		const char *nl;
		size_t len;
		bool end;

		if (c->state == S_DATA) {
			i += data_scan(c, p + i, n - i, &end);
			if (end)
				session_data_end(c);
			continue;
		}
		nl = memchr(p + i, '\n', n - i);
		if (!nl)
			break;
		len = (size_t)(nl - (p + i));
		if (len && p[i + len - 1] == '\r')
			len--;
		session_command(c, p + i, len);
		i = (size_t)(nl - p) + 1;
	}
	return c->closing || c->starttls ? n : i;
}

/* The greeting of a new connection. */
static void session_start(struct conn *c)
{
	struct sink *s = c->w->sink;
	char line[SINK_REPLY_MAX];
	int code = 0;

	if (s->rules) {
		if (sink_rules_use_local_addr(s->rules)) {
			conn_local(c);
			c->match.local = &c->local.sa;
		}
		code = sink_rules_greeting(s->rules, &c->match, line,
					   sizeof line);
	}
	if (code) {
		reply_str(c, line);
		if (code >= 400) {
			CNT_ADD(c->w, refused, 1);
			c->closing = true;
		}
		return;
	}
	reply(c, line, (size_t)snprintf(line, sizeof line,
					 "220 %s ESMTP sluice-sink",
					 s->hostname));
}

/* ---- connections: io_uring plumbing ------------------------------------- */

/* --conn-log: one JSON line per connection when it ends: when it was
 * accepted ("open") and when its client last sent anything ("last"), so
 * [open, last] lies inside the time the client held the connection and
 * overlaps between them never overstate the client's concurrency. */
static void conn_log(struct conn *c)
{
	char src[INET6_ADDRSTRLEN + 8], dst[INET6_ADDRSTRLEN + 8], line[512];
	int n;

	if (c->w->sink->conn_log_fd < 0)
		return;
	conn_peer(c);
	conn_local(c);
	addr_format(&c->peer, false, src, sizeof src);
	addr_format(&c->local, true, dst, sizeof dst);
	if (!c->last_in.tv_sec)
		c->last_in = c->opened;
	n = snprintf(line, sizeof line,
		     "{\"open\":%lld.%06ld,\"last\":%lld.%06ld,\"src\":\"%s\","
		     "\"dst\":\"%s\",\"messages\":%u}\n",
		     (long long)c->opened.tv_sec, c->opened.tv_nsec / 1000,
		     (long long)c->last_in.tv_sec, c->last_in.tv_nsec / 1000, src, dst,
		     c->msgs);
	/* One write of one line to an O_APPEND file: lines never interleave. */
	if (n > 0 && write(c->w->sink->conn_log_fd, line, (size_t)n) < 0)
		sl_err("conn-log: %s", strerror(errno));
}

static void conn_destroy(struct conn *c)
{
	struct worker *w = c->w;

	conn_log(c);

	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	tls_conn_destroy(c->tls);
	sl_buf_free(&c->in);
	sl_buf_free(&c->out);
	sl_buf_free(&c->wire);
	sl_buf_free(&c->msg);
	sl_buf_free(&c->helo);
	sl_buf_free(&c->from);
	sl_buf_free(&c->rcpt_json);
	free(c);
}

/* Close the socket (asynchronously) and free the connection. Only called
 * when no operation of c is in flight. */
static void conn_close(struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(c->w);

	io_uring_prep_close(sqe, c->fd);
	io_uring_sqe_set_data64(sqe, OP_NONE);
	CNT_ADD(c->w, active, (uint64_t)-1);
	conn_destroy(c);
}

static void conn_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(c->w);

	io_uring_prep_recv(sqe, c->fd, NULL, SINK_BUF_SIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = SINK_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
}

static void conn_send(struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(c->w);

	io_uring_prep_send(sqe, c->fd, sl_buf_head(c->tx), sl_buf_avail(c->tx),
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
}

/* Move the replies onto the wire (after any tarpit delay), or go back to
 * reading, or close. */
static void conn_flush(struct conn *c)
{
	struct io_uring_sqe *sqe;

	c->tx = &c->out;
	if (c->tls) {
		if (sl_buf_avail(&c->out) &&
		    tls_conn_write(c->tls, sl_buf_head(&c->out),
				   sl_buf_avail(&c->out)) < 0)
			c->closing = true;
		sl_buf_reset(&c->out);
		if (tls_conn_pending_output(c->tls, &c->wire) < 0)
			c->closing = true;
		c->tx = &c->wire;
	}
	if (!sl_buf_avail(c->tx)) {
		c->delay_ms = 0;
		if (c->closing)
			conn_close(c);
		else
			conn_recv(c);
		return;
	}
	if (c->delay_ms) {
		c->delay_ts.tv_sec = c->delay_ms / 1000;
		c->delay_ts.tv_nsec = (long long)(c->delay_ms % 1000) * 1000000;
		c->delay_ms = 0;
		sqe = get_sqe(c->w);
		io_uring_prep_timeout(sqe, &c->delay_ts, 0, 0);
		io_uring_sqe_set_data64(sqe, tag(c, OP_DELAY));
		return;
	}
	conn_send(c);
}

/* Plaintext from the peer: run the session and answer. */
static void conn_input(struct conn *c, const char *p, size_t n)
{
	size_t used;

	if (sl_buf_avail(&c->in)) {
		if (sl_buf_append(&c->in, p, n)) {
			c->closing = true;
			return;
		}
		used = session_feed(c, sl_buf_head(&c->in), sl_buf_avail(&c->in));
		sl_buf_consume(&c->in, used);
	} else {
		used = session_feed(c, p, n);
		if (used < n && sl_buf_append(&c->in, p + used, n - used))
			c->closing = true;
	}
	if (c->closing || c->starttls) {
		sl_buf_reset(&c->in);
	} else if (sl_buf_avail(&c->in) > SINK_LINE_MAX) {
		REPLY(c, "500 5.5.0 Error: line too long");
		c->closing = true;
	}
}

/* Ciphertext from the peer. */
static void conn_tls_input(struct conn *c, const char *p, size_t n)
{
	struct worker *w = c->w;
	int rc;

	if (tls_conn_feed(c->tls, p, n) < 0)
		goto fail;
	if (c->tls_state == T_HANDSHAKE) {
		rc = tls_conn_handshake(c->tls);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			return;
		c->tls_state = T_UP;
		CNT_ADD(w, tls, 1);
		sl_buf_reset(&c->helo);
		session_reset(c);
	}
	rc = tls_conn_read(c->tls, &w->plain);
	if (rc < 0)
		goto fail;
	if (sl_buf_avail(&w->plain))
		conn_input(c, sl_buf_head(&w->plain), sl_buf_avail(&w->plain));
	sl_buf_reset(&w->plain);
	if (tls_conn_peer_closed(c->tls))
		c->closing = true;
	return;
fail:
	sl_buf_reset(&w->plain);
	c->closing = true;
}

static void on_recv(struct worker *w, struct conn *c, struct io_uring_cqe *cqe)
{
	unsigned bid;
	char *buf;

	if (cqe->res == -ENOBUFS) {
		conn_recv(c);
		return;
	}
	if (cqe->res <= 0 || !(cqe->flags & IORING_CQE_F_BUFFER)) {
		conn_close(c);
		return;
	}
	bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	buf = w->bufs + (size_t)bid * SINK_BUF_SIZE;
	if (w->sink->conn_log_fd >= 0)
		clock_gettime(CLOCK_REALTIME, &c->last_in);
	if (c->tls)
		conn_tls_input(c, buf, (size_t)cqe->res);
	else
		conn_input(c, buf, (size_t)cqe->res);
	io_uring_buf_ring_add(w->br, buf, SINK_BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(SINK_BUF_COUNT), 0);
	io_uring_buf_ring_advance(w->br, 1);
	conn_flush(c);
}

static void on_send(struct worker *w, struct conn *c, int res)
{
	if (res <= 0) {
		conn_close(c);
		return;
	}
	sl_buf_consume(c->tx, (size_t)res);
	if (sl_buf_avail(c->tx)) {
		conn_send(c);
		return;
	}
	if (c->closing) {
		conn_close(c);
		return;
	}
	if (c->starttls) {
		c->starttls = false;
		if (tls_conn_create(w->sink->tls, true, NULL, &c->tls) < 0) {
			conn_close(c);
			return;
		}
		c->tls_state = T_HANDSHAKE;
	}
	conn_recv(c);
}

static void on_accept(struct worker *w, struct listener *l,
		      struct io_uring_cqe *cqe)
{
	struct io_uring_sqe *sqe;
	struct conn *c;
	int fd = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE) && !w->stop) {
		if (fd == -EINVAL && l->multishot) {
			l->multishot = false; /* kernel before 5.19 */
			fd = -EAGAIN;
		}
		sqe = get_sqe(w);
		if (l->multishot)
			io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL,
						       SOCK_CLOEXEC);
		else
			io_uring_prep_accept(sqe, l->fd, NULL, NULL,
					     SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, tag(l, OP_ACCEPT));
	}
	if (fd < 0) {
		if (fd != -EAGAIN && fd != -ECANCELED && fd != -EINTR &&
		    fd != -ECONNABORTED)
			sl_warn("accept on %s: %s", l->name, strerror(-fd));
		return;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->w = w;
	c->lis = l;
	c->fd = fd;
	if (w->sink->conn_log_fd >= 0)
		clock_gettime(CLOCK_REALTIME, &c->opened);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	CNT_ADD(w, connections, 1);
	CNT_ADD(w, active, 1);
	session_start(c);
	conn_flush(c);
}

/* ---- workers ------------------------------------------------------------ */

static void worker_arm_tick(struct worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	w->tick.tv_sec = 1;
	w->tick.tv_nsec = 0;
	io_uring_prep_timeout(sqe, &w->tick, 0, 0);
	io_uring_sqe_set_data64(sqe, tag(w, OP_TICK));
}

static void worker_arm_read(struct worker *w, int fd, void *buf, size_t len,
			    enum op op)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_read(sqe, fd, buf, (unsigned)len, 0);
	io_uring_sqe_set_data64(sqe, tag(w, op));
}

static void sink_stop_all(struct sink *s)
{
	uint64_t one = 1;

	atomic_store(&s->stop, true);
	for (unsigned i = 0; i < s->nthreads; i++)
		if (write(s->workers[i].wake_fd, &one, sizeof one) < 0)
			sl_warn("wake worker %u: %s", i, strerror(errno));
}

static void on_signal(struct worker *w, int res)
{
	if (res != (int)sizeof w->si) {
		worker_arm_read(w, w->sig_fd, &w->si, sizeof w->si, OP_SIGNAL);
		return;
	}
	if (w->si.ssi_signo == SIGUSR1) {
		stats_write(w->sink);
		worker_arm_read(w, w->sig_fd, &w->si, sizeof w->si, OP_SIGNAL);
		return;
	}
	sink_stop_all(w->sink);
}

static void worker_dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	void *p = (void *)(uintptr_t)(data & ~(uint64_t)7);

	switch ((enum op)(data & 7)) {
	case OP_NONE:
		break;
	case OP_ACCEPT:
		on_accept(w, p, cqe);
		break;
	case OP_RECV:
		on_recv(w, p, cqe);
		break;
	case OP_SEND:
		on_send(w, p, cqe->res);
		break;
	case OP_DELAY:
		conn_send(p);
		break;
	case OP_TICK:
		if (w->sink->log_fd >= 0)
			log_flush(w);
		if (w->id == 0)
			stats_write(w->sink);
		if (atomic_load(&w->sink->stop))
			w->stop = true;
		else
			worker_arm_tick(w);
		break;
	case OP_SIGNAL:
		on_signal(w, cqe->res);
		break;
	case OP_WAKE:
		w->stop = true;
		break;
	}
}

static void worker_run(struct worker *w)
{
	struct io_uring_cqe *cqe;
	unsigned head, n;

	for (size_t i = 0; i < w->nlis; i++) {
		struct io_uring_sqe *sqe = get_sqe(w);

		io_uring_prep_multishot_accept(sqe, w->lis[i].fd, NULL, NULL,
					       SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, tag(&w->lis[i], OP_ACCEPT));
	}
	worker_arm_tick(w);
	worker_arm_read(w, w->wake_fd, &w->wake_val, sizeof w->wake_val,
			OP_WAKE);
	if (w->sig_fd >= 0)
		worker_arm_read(w, w->sig_fd, &w->si, sizeof w->si, OP_SIGNAL);
	while (!w->stop) {
		int rc = io_uring_submit_and_wait(&w->ring, 1);

		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			sl_err("worker %u: io_uring: %s", w->id, strerror(-rc));
			sink_stop_all(w->sink);
			break;
		}
		n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			worker_dispatch(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
	}
	if (w->sink->log_fd >= 0)
		log_flush(w);
}

static int worker_setup_ring(struct worker *w)
{
	struct io_uring_params p = { 0 };
	struct io_uring_buf_reg reg = { 0 };
	int rc;

	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_SUBMIT_ALL;
	rc = io_uring_queue_init_params(SINK_RING_ENTRIES, &w->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof p);
		rc = io_uring_queue_init_params(SINK_RING_ENTRIES, &w->ring, &p);
	}
	if (rc < 0)
		return rc;
	w->ring_ok = true;
	io_uring_register_ring_fd(&w->ring); /* an optimisation only */
	w->br_size = SINK_BUF_COUNT * sizeof(struct io_uring_buf);
	w->br = mmap(NULL, w->br_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->br == MAP_FAILED) {
		w->br = NULL;
		return -errno;
	}
	w->bufs = malloc((size_t)SINK_BUF_COUNT * SINK_BUF_SIZE);
	if (!w->bufs)
		return -ENOMEM;
	reg.ring_addr = (uint64_t)(uintptr_t)w->br;
	reg.ring_entries = SINK_BUF_COUNT;
	reg.bgid = SINK_BUF_GROUP;
	rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (rc < 0)
		return rc;
	io_uring_buf_ring_init(w->br);
	for (unsigned i = 0; i < SINK_BUF_COUNT; i++)
		io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * SINK_BUF_SIZE,
				      SINK_BUF_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(SINK_BUF_COUNT),
				      (int)i);
	io_uring_buf_ring_advance(w->br, SINK_BUF_COUNT);
	return 0;
}

/* Set up this worker's ring, meet the others, then run. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct sink *s = w->sink;
	int rc = worker_setup_ring(w);

	if (rc < 0) {
		sl_err("worker %u: io_uring setup: %s", w->id, sl_strerror(rc));
		atomic_store(&s->setup_err, rc);
	}
	pthread_barrier_wait(&s->ready);
	if (!atomic_load(&s->setup_err))
		worker_run(w);
	return NULL;
}

static void worker_cleanup(struct worker *w)
{
	while (w->conns) {
		close(w->conns->fd);
		conn_destroy(w->conns);
	}
	if (w->ring_ok)
		io_uring_queue_exit(&w->ring);
	if (w->br)
		munmap(w->br, w->br_size);
	free(w->bufs);
	for (size_t i = 0; i < w->nlis; i++)
		close(w->lis[i].fd);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	if (w->sig_fd >= 0)
		close(w->sig_fd);
	sl_buf_free(&w->log);
	sl_buf_free(&w->plain);
}

/* ---- setup -------------------------------------------------------------- */

/* "ADDR:PORT", "[ADDR6]:PORT", "*:PORT", ":PORT" or "PORT". */
static int parse_listen(const char *arg, struct listen_spec *l)
{
	char host[256] = "", port[16];
	const char *colon;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV },
			*res = NULL;
	size_t hlen;
	int rc;

	if (arg[0] == '[') {
		colon = strstr(arg, "]:");
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - arg - 1);
		if (hlen >= sizeof host)
			return -EINVAL;
		memcpy(host, arg + 1, hlen);
		host[hlen] = '\0';
		colon++;
	} else {
		colon = strrchr(arg, ':');
		hlen = colon ? (size_t)(colon - arg) : 0;
		if (hlen >= sizeof host)
			return -EINVAL;
		memcpy(host, arg, hlen);
		host[hlen] = '\0';
	}
	snprintf(port, sizeof port, "%s", colon ? colon + 1 : arg);
	if (!port[0] || strlen(port) > 5 ||
	    strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
		return -EINVAL;
	l->wildcard = !host[0] || !strcmp(host, "*");
	if (l->wildcard)
		hints.ai_family = AF_INET6;
	rc = getaddrinfo(l->wildcard ? NULL : host, port, &hints, &res);
	if (rc && l->wildcard) {
		hints.ai_family = AF_INET;
		rc = getaddrinfo(NULL, port, &hints, &res);
	}
	if (rc)
		return SL_ENOTFOUND;
	memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
	l->len = res->ai_addrlen;
	freeaddrinfo(res);
	if (l->addr.sa.sa_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&l->addr.in6.sin6_addr))
		l->wildcard = true;
	if (l->addr.sa.sa_family == AF_INET &&
	    l->addr.in.sin_addr.s_addr == htonl(INADDR_ANY))
		l->wildcard = true;
	return 0;
}

static int listener_open(struct sink *s, struct listen_spec *spec,
			 struct listener *l)
{
	socklen_t len = sizeof l->addr;
	int one = 1, zero = 0, rc;

	l->fd = socket(spec->addr.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -errno;
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (s->nthreads > 1)
		setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (spec->addr.sa.sa_family == AF_INET6 && spec->wildcard)
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (bind(l->fd, &spec->addr.sa, spec->len) < 0 ||
	    listen(l->fd, 4096) < 0 ||
	    getsockname(l->fd, &l->addr.sa, &len) < 0) {
		rc = -errno;
		close(l->fd);
		l->fd = -1;
		return rc;
	}
	/* port 0: every later thread binds the port the first one got */
	spec->addr = l->addr;
	l->wildcard = spec->wildcard;
	l->multishot = true;
	addr_format(&l->addr, true, l->name, sizeof l->name);
	return 0;
}

static int build_ehlo(struct sink *s, struct sl_buf *b, bool starttls)
{
	int rc = sl_buf_appendf(b, "250-%s\r\n250-PIPELINING\r\n250-SIZE %u\r\n"
				"250-8BITMIME\r\n250-SMTPUTF8\r\n%s"
				"250 ENHANCEDSTATUSCODES",
				s->hostname, SINK_MAX_SIZE,
				starttls ? "250-STARTTLS\r\n" : "");

	return rc;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluice-sink -l ADDR:PORT [-l ADDR:PORT ...] [-r RULES] "
		"[-o SAVE_DIR]\n"
		"                   [-L LOG_FILE] [--tls-cert PEM --tls-key PEM] "
		"[--stats FILE]\n"
		"                   [-t THREADS] [-n HOSTNAME] [--seed N] [-q]\n"
		"       sluice-sink --check-rules RULES\n"
		"  -l, --listen ADDR:PORT   listen here (repeatable; [v6]:port, "
		"*:port, port 0 = any)\n"
		"  -r, --rules FILE         provider behaviour rules "
		"(docs/sink.md)\n"
		"  -o, --save-dir DIR       save each accepted message as "
		"DIR/<seq>.eml\n"
		"  -L, --log FILE           append one JSON line per accepted "
		"message\n"
		"      --tls-cert, --tls-key PEM   offer STARTTLS with this "
		"certificate and key\n"
		"      --stats FILE         JSON counters, rewritten every "
		"second, on SIGUSR1 and at exit\n"
		"      --conn-log FILE      append one JSON line per connection "
		"when it ends\n"
		"  -t, --threads N          event loops (SO_REUSEPORT), "
		"default 1\n"
		"  -n, --hostname NAME      name in the banner and EHLO reply\n"
		"      --seed N             seed of the fail-rate PRNG "
		"(deterministic per thread)\n"
		"  -q, --quiet              no startup and summary messages\n"
		"Prints \"listening ADDR:PORT\" on stdout for each address once "
		"ready.\n");
}

enum { OPT_TLS_CERT = 256, OPT_TLS_KEY, OPT_STATS, OPT_SEED, OPT_CHECK, OPT_CONN_LOG };

static int parse_args(struct sink *s, int argc, char **argv,
		      const char **rules_path, const char **cert,
		      const char **key, const char **save_dir,
		      const char **log_path, bool *check_only)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "rules", required_argument, NULL, 'r' },
		{ "save-dir", required_argument, NULL, 'o' },
		{ "log", required_argument, NULL, 'L' },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "conn-log", required_argument, NULL, OPT_CONN_LOG },
		{ "threads", required_argument, NULL, 't' },
		{ "hostname", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "check-rules", required_argument, NULL, OPT_CHECK },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	long v;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "l:r:o:L:t:n:qh", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (s->nlisten == SINK_MAX_LISTEN) {
				fprintf(stderr, "sluice-sink: too many -l\n");
				return -EINVAL;
			}
			rc = parse_listen(optarg, &s->listen[s->nlisten]);
			if (rc) {
				fprintf(stderr, "sluice-sink: -l %s: %s\n",
					optarg,
					"expected ADDR:PORT, [ADDR6]:PORT or "
					"*:PORT");
				return rc;
			}
			s->nlisten++;
			break;
		case 'r':
			*rules_path = optarg;
			break;
		case OPT_CHECK:
			*rules_path = optarg;
			*check_only = true;
			break;
		case 'o':
			*save_dir = optarg;
			break;
		case 'L':
			*log_path = optarg;
			break;
		case OPT_TLS_CERT:
			*cert = optarg;
			break;
		case OPT_TLS_KEY:
			*key = optarg;
			break;
		case OPT_STATS:
			s->stats_path = optarg;
			break;
		case OPT_CONN_LOG:
			s->conn_log_fd = open(optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
					      0644);
			if (s->conn_log_fd < 0) {
				fprintf(stderr, "sluice-sink: --conn-log %s: %s\n", optarg,
					strerror(errno));
				return -1;
			}
			break;
		case 't':
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > SINK_MAX_THREADS) {
				fprintf(stderr, "sluice-sink: -t: 1..%d\n",
					SINK_MAX_THREADS);
				return -EINVAL;
			}
			s->nthreads = (unsigned)v;
			break;
		case 'n':
			snprintf(s->hostname, sizeof s->hostname, "%s", optarg);
			break;
		case OPT_SEED:
			s->seed = strtoull(optarg, &end, 0);
			if (*end) {
				fprintf(stderr, "sluice-sink: --seed: not a "
					"number\n");
				return -EINVAL;
			}
			break;
		case 'q':
			s->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluice-sink: unexpected argument '%s'\n",
			argv[optind]);
		return -EINVAL;
	}
	if (!*check_only && !s->nlisten) {
		fprintf(stderr, "sluice-sink: at least one -l ADDR:PORT is "
			"required\n");
		return -EINVAL;
	}
	if (!*cert != !*key) {
		fprintf(stderr, "sluice-sink: --tls-cert and --tls-key go "
			"together\n");
		return -EINVAL;
	}
	return 0;
}

/* Everything a worker needs except its ring (made in its own thread). */
static int worker_init(struct sink *s, struct worker *w, unsigned id)
{
	int rc;

	w->sink = s;
	w->id = id;
	w->sig_fd = -1;
	w->rng = s->seed + id * 0x9e3779b97f4a7c15ull;
	if (!w->rng)
		w->rng = 1;
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (w->wake_fd < 0)
		return -errno;
	for (size_t i = 0; i < s->nlisten; i++) {
		rc = listener_open(s, &s->listen[i], &w->lis[i]);
		if (rc) {
			char name[INET6_ADDRSTRLEN + 8];

			addr_format(&s->listen[i].addr, true, name, sizeof name);
			fprintf(stderr, "sluice-sink: listen %s: %s\n", name,
				sl_strerror(rc));
			return rc;
		}
		w->lis[i].w = w;
		w->nlis++;
	}
	return 0;
}

static void summary(struct sink *s)
{
	uint64_t msgs = 0, conns = 0, bytes = 0;
	struct timespec now;
	double up;

	for (unsigned i = 0; i < s->nthreads; i++) {
		msgs += CNT_GET(&s->workers[i], messages);
		conns += CNT_GET(&s->workers[i], connections);
		bytes += CNT_GET(&s->workers[i], bytes);
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	up = (double)(now.tv_sec - s->started.tv_sec) +
	     (double)(now.tv_nsec - s->started.tv_nsec) / 1e9;
	sl_info("sluice-sink: %llu messages, %llu connections, %llu bytes "
		"in %.1f s",
		(unsigned long long)msgs, (unsigned long long)conns,
		(unsigned long long)bytes, up);
}

int main(int argc, char **argv)
{
	static struct sink sink;
	struct sink *s = &sink;
	const char *rules_path = NULL, *cert = NULL, *key = NULL,
		   *save_dir = NULL, *log_path = NULL;
	bool check_only = false;
	char err[512];
	sigset_t sigs;
	unsigned started = 0;
	int rc, status = 1;

	s->nthreads = 1;
	s->save_dir_fd = -1;
	s->log_fd = -1;
	s->conn_log_fd = -1;
	s->seed = 1;
	if (gethostname(s->hostname, sizeof s->hostname) < 0 || !s->hostname[0])
		snprintf(s->hostname, sizeof s->hostname, "sluice-sink.test");
	s->hostname[sizeof s->hostname - 1] = '\0';
	if (parse_args(s, argc, argv, &rules_path, &cert, &key, &save_dir,
		       &log_path, &check_only))
		return 2;
	if (s->quiet)
		sl_log_set_level(SL_LOG_WARN);
	if (rules_path) {
		rc = sink_rules_load(rules_path, &s->rules, err, sizeof err);
		if (rc) {
			fprintf(stderr, "sluice-sink: %s\n", err);
			return 2;
		}
		if (check_only) {
			printf("%s: %zu rules ok\n", rules_path,
			       sink_rules_count(s->rules));
			sink_rules_destroy(s->rules);
			return 0;
		}
	}
	pthread_mutex_init(&s->rate_lock, NULL);
	clock_gettime(CLOCK_MONOTONIC, &s->started);
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (save_dir) {
		mkdir(save_dir, 0755);
		s->save_dir_fd = open(save_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->save_dir_fd < 0) {
			fprintf(stderr, "sluice-sink: -o %s: %s\n", save_dir,
				strerror(errno));
			goto out;
		}
	}
	if (log_path) {
		s->log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND |
					       O_CLOEXEC, 0644);
		if (s->log_fd < 0) {
			fprintf(stderr, "sluice-sink: -L %s: %s\n", log_path,
				strerror(errno));
			goto out;
		}
	}
	if (cert) {
		rc = tls_ctx_server_create(cert, key, &s->tls);
		if (rc) {
			tls_last_error(err, sizeof err);
			fprintf(stderr, "sluice-sink: TLS %s / %s: %s %s\n",
				cert, key, sl_strerror(rc), err);
			goto out;
		}
	}
	if (build_ehlo(s, &s->ehlo_plain, false) ||
	    build_ehlo(s, &s->ehlo_tls, s->tls != NULL))
		goto out;

	s->workers = calloc(s->nthreads, sizeof *s->workers);
	if (!s->workers)
		goto out;
	for (unsigned i = 0; i < s->nthreads; i++)
		s->workers[i].wake_fd = s->workers[i].sig_fd = -1;
	for (unsigned i = 0; i < s->nthreads; i++)
		if (worker_init(s, &s->workers[i], i))
			goto out;
	s->workers[0].sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (s->workers[0].sig_fd < 0) {
		fprintf(stderr, "sluice-sink: signalfd: %s\n", strerror(errno));
		goto out;
	}
	pthread_barrier_init(&s->ready, NULL, s->nthreads);
	for (started = 1; started < s->nthreads; started++) {
		rc = pthread_create(&s->workers[started].thread, NULL,
				    worker_main, &s->workers[started]);
		if (rc) {
			fprintf(stderr, "sluice-sink: thread: %s\n", strerror(rc));
			exit(1); /* the barrier cannot be met */
		}
	}
	rc = worker_setup_ring(&s->workers[0]);
	if (rc < 0) {
		fprintf(stderr, "sluice-sink: io_uring setup: %s\n",
			sl_strerror(rc));
		atomic_store(&s->setup_err, rc);
	}
	pthread_barrier_wait(&s->ready);
	if (!atomic_load(&s->setup_err)) {
		for (size_t i = 0; i < s->workers[0].nlis; i++)
			printf("listening %s\n", s->workers[0].lis[i].name);
		fflush(stdout);
		sl_info("sluice-sink: %u thread(s), %zu rules%s%s%s",
			s->nthreads, s->rules ? sink_rules_count(s->rules) : 0,
			s->tls ? ", STARTTLS" : "", log_path ? ", logging" : "",
			save_dir ? ", saving" : "");
		worker_run(&s->workers[0]);
		sink_stop_all(s);
		status = 0;
	}
	for (unsigned i = 1; i < started; i++)
		pthread_join(s->workers[i].thread, NULL);
	pthread_barrier_destroy(&s->ready);
	stats_write(s);
	if (status == 0 && !s->quiet)
		summary(s);
out:
	if (s->workers)
		for (unsigned i = 0; i < s->nthreads; i++)
			worker_cleanup(&s->workers[i]);
	free(s->workers);
	tls_ctx_destroy(s->tls);
	sink_rules_destroy(s->rules);
	sl_buf_free(&s->ehlo_plain);
	sl_buf_free(&s->ehlo_tls);
	if (s->log_fd >= 0)
		close(s->log_fd);
	if (s->save_dir_fd >= 0)
		close(s->save_dir_fd);
	return status;
}
