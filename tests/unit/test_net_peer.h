/*
 * test_net_peer.h — a scripted peer for the userspace stack's unit tests:
 * builds the frames a remote host would send, collects and parses the
 * frames the stack emits, and records both directions as a pcap transcript
 * (open it with tcpdump -r). Header-only, included by test_net_*.c.
 */
#ifndef SL_TEST_NET_PEER_H
#define SL_TEST_NET_PEER_H

#include "net_csum.h"
#include "net_stack.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define US_IP "203.0.113.2"
#define PEER_IP "203.0.113.1"
static const uint8_t us_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x01};

struct tframe {
	uint8_t d[2048];
	size_t len;
	unsigned flags;
};

#define TOUT_MAX 512
static struct tframe tout[TOUT_MAX];
static size_t tout_n, tout_rd;
static bool tout_discard; /* bulk tests: count only */
static uint64_t tout_total;
static uint64_t now;
static FILE *tpcap;
static char tpcap_path[512];

static uint32_t ip4(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static inline void pcap_put(FILE *f, const uint8_t *d, size_t len)
{
	uint32_t h[4] = {(uint32_t)(now / 1000), (uint32_t)(now % 1000) * 1000, (uint32_t)len,
			 (uint32_t)len};
	fwrite(h, sizeof(h), 1, f);
	fwrite(d, 1, len, f);
	fflush(f); /* a failed assertion longjmps past pcap_end */
}

/* Start a transcript: $NET_PCAP_DIR (default /tmp/sluice-net-pcap)/name.pcap */
static inline void pcap_begin(const char *name)
{
	const char *dir = getenv("NET_PCAP_DIR");
	if (!dir)
		dir = "/tmp/sluice-net-pcap";
	mkdir(dir, 0755);
	snprintf(tpcap_path, sizeof(tpcap_path), "%s/%s.pcap", dir, name);
	tpcap = fopen(tpcap_path, "wb");
	if (tpcap) {
		uint32_t gh[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
		fwrite(gh, sizeof(gh), 1, tpcap);
	}
}

static inline void pcap_end(void)
{
	if (tpcap)
		fclose(tpcap);
	tpcap = NULL;
}

static inline void test_tx(void *ctx, const uint8_t *frame, size_t len, unsigned flags)
{
	(void)ctx;
	tout_total++;
	if (tpcap)
		pcap_put(tpcap, frame, len);
	if (tout_discard)
		return;
	if (tout_n == TOUT_MAX) { /* keep the newest: shift */
		memmove(tout, tout + 1, sizeof(tout[0]) * (TOUT_MAX - 1));
		tout_n--;
		if (tout_rd)
			tout_rd--;
	}
	memcpy(tout[tout_n].d, frame, len < sizeof(tout[0].d) ? len : sizeof(tout[0].d));
	tout[tout_n].len = len;
	tout[tout_n].flags = flags;
	tout_n++;
}

static inline size_t tout_pending(void)
{
	return tout_n - tout_rd;
}

static inline void tout_clear(void)
{
	tout_n = tout_rd = 0;
}

static inline const struct tframe *tout_next(void)
{
	if (tout_rd == tout_n)
		return NULL;
	return &tout[tout_rd++];
}

/* Feed a frame to the stack, recording it. */
static inline void peer_frame(struct net_stack *ns, const uint8_t *f, size_t len)
{
	if (tpcap)
		pcap_put(tpcap, f, len);
	net_stack_input(ns, f, len, now);
}

static inline size_t peer_eth(uint8_t *f, uint16_t type)
{
	memcpy(f, us_mac, 6);
	memcpy(f + 6, peer_mac, 6);
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
	return 14;
}

static inline size_t peer_ip(uint8_t *f, size_t l4len, uint8_t proto, uint32_t src, uint32_t dst)
{
	uint8_t *ip = f + 14;
	peer_eth(f, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + l4len) >> 8);
	ip[3] = (uint8_t)(20 + l4len);
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	uint16_t c = net_csum(ip, 20);
	memcpy(ip + 10, &c, 2);
	return 14 + 20 + l4len;
}

struct peer_opts {
	uint16_t mss; /* 0 = none */
	int ws;       /* -1 = none */
	bool sack;    /* SACK-permitted */
};

/* A TCP segment from the peer (PEER_IP:pport -> US_IP:uport). */
static inline size_t peer_tcp_build(uint8_t *f, uint16_t pport, uint16_t uport, uint8_t fl,
			     uint32_t seq, uint32_t ack, uint16_t win, const void *data,
			     size_t len, const struct peer_opts *o)
{
	uint8_t *t = f + 34;
	size_t ol = 0;
	uint8_t opt[16];
	if (o && o->mss) {
		opt[ol++] = 2;
		opt[ol++] = 4;
		opt[ol++] = (uint8_t)(o->mss >> 8);
		opt[ol++] = (uint8_t)o->mss;
	}
	if (o && o->ws >= 0) {
		opt[ol++] = 1;
		opt[ol++] = 3;
		opt[ol++] = 3;
		opt[ol++] = (uint8_t)o->ws;
	}
	if (o && o->sack) {
		opt[ol++] = 1;
		opt[ol++] = 1;
		opt[ol++] = 4;
		opt[ol++] = 2;
	}
	size_t hl = 20 + ol;
	memset(t, 0, 20);
	t[0] = (uint8_t)(pport >> 8);
	t[1] = (uint8_t)pport;
	t[2] = (uint8_t)(uport >> 8);
	t[3] = (uint8_t)uport;
	uint32_t v = htonl(seq);
	memcpy(t + 4, &v, 4);
	v = htonl(ack);
	memcpy(t + 8, &v, 4);
	t[12] = (uint8_t)((hl / 4) << 4);
	t[13] = fl;
	t[14] = (uint8_t)(win >> 8);
	t[15] = (uint8_t)win;
	memcpy(t + 20, opt, ol);
	if (len)
		memcpy(t + hl, data, len);
	uint32_t src = ip4(PEER_IP), dst = ip4(US_IP);
	uint32_t ph = net_csum_phdr(src, dst, 6, (uint16_t)(hl + len));
	uint16_t c = (uint16_t)~net_csum_fold(net_csum_partial(t, hl + len, ph));
	memcpy(t + 16, &c, 2);
	return peer_ip(f, hl + len, 6, src, dst);
}

struct tseg {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t fl;
	uint16_t win;
	size_t dlen;
	const uint8_t *data;
	uint16_t mss;
	int ws;
	bool sack_ok;
	size_t nsack;
	uint32_t sack[8];
	unsigned txflags;
};

/* Parse an emitted IPv4/TCP frame, checking checksums; false if it is not one. */
static inline bool parse_tcp(const struct tframe *fr, struct tseg *s)
{
	const uint8_t *f = fr->d;
	if (fr->len < 54 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 6)
		return false;
	const uint8_t *ip = f + 14;
	if (net_csum(ip, 20) != 0)
		return false;
	if (!(ip[6] & 0x40)) /* DF */
		return false;
	size_t tot = (size_t)(ip[2] << 8 | ip[3]);
	const uint8_t *t = ip + 20;
	size_t tlen = tot - 20;
	uint32_t src, dst;
	memcpy(&src, ip + 12, 4);
	memcpy(&dst, ip + 16, 4);
	if (net_csum_fold(net_csum_partial(t, tlen, net_csum_phdr(src, dst, 6, (uint16_t)tlen))) !=
	    0xffff)
		return false;
	size_t hl = (size_t)(t[12] >> 4) * 4;
	memset(s, 0, sizeof(*s));
	s->sport = (uint16_t)(t[0] << 8 | t[1]);
	s->dport = (uint16_t)(t[2] << 8 | t[3]);
	uint32_t v;
	memcpy(&v, t + 4, 4);
	s->seq = ntohl(v);
	memcpy(&v, t + 8, 4);
	s->ack = ntohl(v);
	s->fl = t[13];
	s->win = (uint16_t)(t[14] << 8 | t[15]);
	s->data = t + hl;
	s->dlen = tlen - hl;
	s->ws = -1;
	s->txflags = fr->flags;
	for (size_t i = 20; i < hl;) {
		if (t[i] == 0)
			break;
		if (t[i] == 1) {
			i++;
			continue;
		}
		if (t[i] == 2)
			s->mss = (uint16_t)(t[i + 2] << 8 | t[i + 3]);
		if (t[i] == 3)
			s->ws = t[i + 2];
		if (t[i] == 4)
			s->sack_ok = true;
		if (t[i] == 5)
			for (size_t k = 0; k + 2 < t[i + 1] && s->nsack < 4; k += 8, s->nsack++) {
				memcpy(&v, t + i + 2 + k, 4);
				s->sack[2 * s->nsack] = ntohl(v);
				memcpy(&v, t + i + 6 + k, 4);
				s->sack[2 * s->nsack + 1] = ntohl(v);
			}
		i += t[i + 1];
	}
	return true;
}

static inline size_t peer_arp_build(uint8_t *f, uint16_t op, uint32_t spa, const uint8_t *tha,
			     uint32_t tpa, bool bcast)
{
	memset(f, 0, 60);
	peer_eth(f, 0x0806);
	if (bcast)
		memset(f, 0xff, 6);
	uint8_t *a = f + 14;
	a[1] = 1;
	a[2] = 0x08;
	a[4] = 6;
	a[5] = 4;
	a[7] = (uint8_t)op;
	memcpy(a + 8, peer_mac, 6);
	memcpy(a + 14, &spa, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, &tpa, 4);
	return 60;
}

/* Compare the transcript just written with a golden one (or write it with
 * NET_GOLDEN_UPDATE=1). Returns 0 when equal. */
static inline int golden_compare(const char *name)
{
	char gpath[512];
	snprintf(gpath, sizeof(gpath), "tests/unit/data/net/%s.pcap", name);
	FILE *a = fopen(tpcap_path, "rb");
	if (!a)
		return -1;
	if (getenv("NET_GOLDEN_UPDATE")) {
		FILE *g = fopen(gpath, "wb");
		int ch;
		while ((ch = fgetc(a)) != EOF)
			fputc(ch, g);
		fclose(g);
		fclose(a);
		return 0;
	}
	FILE *b = fopen(gpath, "rb");
	if (!b) {
		fclose(a);
		fprintf(stderr, "missing golden %s (NET_GOLDEN_UPDATE=1 writes it)\n", gpath);
		return -1;
	}
	int ca, cb, rc = 0;
	do {
		ca = fgetc(a);
		cb = fgetc(b);
		if (ca != cb) {
			fprintf(stderr, "%s differs from %s (tcpdump -r both)\n", tpcap_path, gpath);
			rc = -1;
			break;
		}
	} while (ca != EOF);
	fclose(a);
	fclose(b);
	return rc;
}

#endif
