/*
 * config.h — sluiced's configuration: one strict YAML file.
 *
 * config_load() parses a file into a struct sl_config that the caller owns
 * and frees with config_free(). Parsing is strict: an unknown key, a value
 * of the wrong type, an out-of-range number, a bad address or a missing
 * required key fails with SL_ECONFIG and a message of the form
 *     "FILE:LINE:COL: what is wrong (hint)"
 * in the caller's error buffer (LINE and COL are 1-based, pointing at the
 * offending key or value). Every default lives in config_defaults() and
 * nowhere else. See configs/sluice.yaml for an annotated example of every
 * key; docs/config.md is the reference.
 *
 * Durations are written "30s", "5m", "2h", "5d", "250ms" or a plain number
 * of seconds, and stored in milliseconds. Sizes are written "512", "64k",
 * "25M", "1G" (binary multiples) and stored in bytes. Addresses are
 * "IPv4:port", "[IPv6]:port"; networks are CIDR ("127.0.0.0/8", "::1/128").
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum sl_stream { SL_STREAM_TRANSACTIONAL = 0, SL_STREAM_MARKETING = 1 };

/* A CIDR network, e.g. 198.51.100.0/24. */
struct sl_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int prefix;
};

/* A tenant that injects mail (the control store takes these over later). */
struct sl_tenant_cfg {
	char *name;            /* tenants[].name, required, unique */
	char *username;        /* tenants[].username, SMTP AUTH identity; default = name */
	char *password_hash;   /* tenants[].password_hash, from `sluicectl passwd` */
	enum sl_stream stream; /* tenants[].stream, default stream: transactional */
	char *pool;            /* tenants[].pool, pool name; default: first pool */
	/* tenants[].transactional_pool / marketing_pool: the pool per stream,
	 * indexed by enum sl_stream; default: pool. */
	char *stream_pool[2];
};

/* An ESMTP listener for tenants' submissions. */
struct sl_listener_cfg {
	char *name;                        /* listeners[].name, required */
	struct sockaddr_storage addr;      /* listeners[].address, required */
	socklen_t addr_len;
	char *tls_cert;                    /* listeners[].tls.cert (PEM path); STARTTLS offered when set */
	char *tls_key;                     /* listeners[].tls.key (PEM path) */
	struct sl_cidr *relay_networks;    /* listeners[].relay_networks: may send unauthenticated */
	size_t n_relay_networks;
	char *relay_tenant;                /* listeners[].relay_tenant: tenant for those; required if networks set */
	bool inbound;                      /* listeners[].inbound: mail for the appliance's own domains (bounces:), no AUTH */
};

struct sl_source_ip_cfg {
	struct sockaddr_storage addr; /* pools[].ips[].address (no port) */
	socklen_t addr_len;
	char *ehlo;                   /* pools[].ips[].ehlo, required */
};

/* Which stack carries a pool's outbound connections. */
enum sl_transport_kind { SL_TRANSPORT_URING = 0, SL_TRANSPORT_DPDK = 1 };

struct sl_pool_cfg {
	char *name;                   /* pools[].name, required, unique */
	struct sl_source_ip_cfg *ips; /* pools[].ips, at least one */
	size_t n_ips;
	enum sl_transport_kind transport; /* pools[].transport: uring | dpdk, default uring */
};

/* A static route: mail for `domain` goes to host:port instead of its MX. */
struct sl_route_cfg {
	char *domain;                 /* routes[].domain; "*" matches every domain */
	char *host;                   /* routes[].host: IP literal or hostname */
	uint16_t port;                /* routes[].port, default 25 */
	bool require_tls;             /* routes[].require_tls, default false */
};

/* A DKIM signing key: mail whose From domain is `domain` is signed with it.
 * Several keys for one domain (e.g. RSA and Ed25519) mean dual signing. */
struct sl_dkim_key_cfg {
	char *domain;                 /* dkim[].domain, required */
	char *selector;               /* dkim[].selector, required */
	char *key;                    /* dkim[].key, required: PEM private key path */
	char *algorithm;              /* dkim[].algorithm: rsa-sha256 | ed25519-sha256; default from the key */
};

struct sl_limits_cfg {
	size_t max_line_length;       /* limits.max_line_length, default 1000 (RFC 5321 text line) */
	size_t max_message_size;      /* limits.max_message_size, default 25M; advertised in SIZE */
	unsigned max_recipients;      /* limits.max_recipients, default 1000 */
	unsigned max_errors;          /* limits.max_errors, default 10, then 421 and close */
	unsigned max_clients;         /* limits.max_clients, default 10000 concurrent sessions */
	uint64_t command_timeout_ms;  /* limits.command_timeout, default 5m */
	uint64_t data_timeout_ms;     /* limits.data_timeout, default 10m */
};

struct sl_delivery_cfg {
	uint64_t *retry_ms;           /* delivery.retry_schedule, default [1m,5m,15m,30m,1h,2h,4h] (last repeats) */
	size_t n_retry;
	uint64_t max_age_ms;          /* delivery.max_age, default 5d */
	uint64_t connect_timeout_ms;  /* delivery.connect_timeout, default 30s */
	uint64_t command_timeout_ms;  /* delivery.command_timeout, default 5m */
	unsigned max_connections_per_domain; /* delivery.max_connections_per_domain, default 32 */
	unsigned max_messages_per_connection;/* delivery.max_messages_per_connection, default 100 */
	unsigned max_connections;     /* delivery.max_connections (total), default 2000 */
	bool dsn;                     /* delivery.dsn: send RFC 3464 DSNs for bounces, default true */
	char **require_tls_domains;   /* delivery.require_tls_domains, default none */
	size_t n_require_tls_domains;
	bool tls_verify;              /* delivery.tls_verify: `require` domains and routes get `verify`, default false */
	char **verify_tls_domains;    /* delivery.verify_tls_domains: TLS with a verified certificate, default none */
	size_t n_verify_tls_domains;
	char **no_tls_domains;        /* delivery.no_tls_domains: never STARTTLS, default none */
	size_t n_no_tls_domains;
	char *tls_ca_file;            /* delivery.tls_ca_file: CA bundle for verify and MTA-STS, default NULL = system */
	bool mta_sts;                 /* delivery.mta_sts: honour RFC 8461 policies, default false */
	uint64_t stuck_age_ms;        /* delivery.stuck_age: a queue whose oldest message is older is stuck, default 1h */
	unsigned stuck_deferrals;     /* delivery.stuck_deferrals: ... or that got the same deferral this often in a row, default 5 */
	bool dane;                    /* delivery.dane: off|on, default off (needs dns.trust_anchor_file) */
};

struct sl_spool_cfg {
	char *path;                   /* spool.path, default /var/lib/sluice/spool */
	size_t map_size;              /* spool.map_size, default 8G */
	unsigned commit_batch;        /* spool.commit_batch: max messages per transaction, default 1024 */
	bool sync;                    /* spool.sync: fsync each commit, default true (never false in production) */
};

struct sl_dns_cfg {
	struct sockaddr_storage *servers; /* dns.servers (ip or ip:port); default: /etc/resolv.conf */
	socklen_t *server_lens;
	size_t n_servers;
	char *trust_anchor_file;          /* dns.trust_anchor_file: DNSSEC trust anchors (DS/DNSKEY); default none: no validation */
};

/* Bounce and complaint intake, reputation automation (bounces: section;
 * absent = plain MAIL FROM, no inbound processing). Needs control:. */
struct sl_bounces_cfg {
	bool enabled;               /* the section is present */
	char *return_path_domain;   /* bounces.return_path_domain, required: VERP return paths */
	char *secret_file;          /* bounces.secret_file, default STORE/verp.secret (created if absent) */
	char *fbl_address;          /* bounces.fbl_address: ARF feedback reports arrive here; default none */
	char **domains;             /* bounces.domains: more domains the inbound listener accepts */
	size_t n_domains;
	char *response_rules;       /* bounces.response_rules: receiver response rules file; default none */
	char *policy;               /* bounces.policy: thresholds (policy.yaml); default none = builtin defaults */
	char *spamtraps;            /* bounces.spamtraps: trap addresses / @domains, one a line; default none */
	char *bounce_rules;         /* bounces.bounce_rules: DSN classification rules, default /etc/sluice/bounce-rules.conf */
};

/* Sending-domain verification and verify-by-email (sender_auth: section,
 * docs/domains.md); needs control:. */
enum sl_enforce { SL_ENFORCE_API_TENANTS = 0, SL_ENFORCE_ALL, SL_ENFORCE_NONE };
struct sl_sender_auth_cfg {
	bool enabled;               /* the section is present */
	enum sl_enforce enforce;    /* sender_auth.enforce: who must use verified domains; default api_tenants */
	char *spf_include;          /* sender_auth.spf_include: appliance SPF domain; default none (ip4: list) */
	char *dmarc_rua;            /* sender_auth.dmarc_rua: address for the suggested DMARC rua=; default none */
	uint64_t check_interval_ms; /* sender_auth.check_interval: periodic re-check; default 1h */
	char *verification_domain;  /* sender_auth.verification_domain: enables verify-by-email; default none */
	uint64_t verification_ttl_ms; /* sender_auth.verification_ttl, default 24h */
	char *webhook_url;          /* sender_auth.webhook_url: verified-address webhook; default none */
	char *webhook_secret;       /* sender_auth.webhook_secret: HMAC-SHA256 key */
	char *unsubscribe_url;      /* sender_auth.unsubscribe_url: base of one-click links (the API's URL); default none = no List-Unsubscribe */
	char *unsubscribe_secret;   /* sender_auth.unsubscribe_secret: HMAC key of those links */
};

/* Outbound link checking at acceptance (link_check: section, docs/blocklists.md);
 * absent = off. */
enum sl_link_action { SL_LINK_REJECT = 0, SL_LINK_HOLD, SL_LINK_LOG };
struct sl_link_check_cfg {
	bool enabled;               /* the section is present */
	enum sl_link_action action; /* link_check.action: reject | hold | log; default reject (hold needs control:) */
	char *blocklist;            /* link_check.blocklist: domains, one a line (subdomains match); default none */
	char **uribl_zones;         /* link_check.uribl_zones: DNS URI blocklists; default none */
	size_t n_uribl_zones;
	uint64_t dns_timeout_ms;    /* link_check.dns_timeout: then accept (fail open); default 2s */
	size_t max_scan;            /* link_check.max_scan: decoded text bytes scanned per message; default 1M */
	unsigned max_hosts;         /* link_check.max_hosts: distinct hosts checked per message; default 20 */
};

/* Periodic DNSBL self-check of the source IPs (dnsbl: section); absent = off. */
struct sl_dnsbl_cfg {
	bool enabled;               /* the section is present */
	char **zones;               /* dnsbl.zones, required: e.g. zen.spamhaus.org */
	size_t n_zones;
	uint64_t interval_ms;       /* dnsbl.interval, default 1h (plus once at start) */
};

/* The control plane (control: section); absent = no store, no admin API. */
struct sl_control_cfg {
	bool enabled;        /* the section is present */
	char *store;         /* control.store, default /var/lib/sluice/control */
	char *api_address;   /* control.api.address, "HOST:PORT", default 127.0.0.1:8025 */
	char *api_tls_cert;  /* control.api.tls_cert / tls_key (PEM paths); default none */
	char *api_tls_key;
};

/* The DPDK port that owns the source IPs of every `transport: dpdk` pool
 * (docs/dpdk.md). Only read when such a pool exists. */
struct sl_dpdk_cfg {
	char **eal_args;              /* dpdk.eal_args, required with a dpdk pool: EAL command line */
	size_t n_eal_args;
	char *port;                   /* dpdk.port: port id or device name; default NULL = port 0 */
	unsigned rx_descriptors;      /* dpdk.rx_descriptors, default 1024 */
	unsigned tx_descriptors;      /* dpdk.tx_descriptors, default 1024 */
	unsigned mbufs;               /* dpdk.mbufs: packet buffers in the pool, default 8191 */
	uint32_t gateway;             /* dpdk.gateway: IPv4 next hop, network order; default 0 = none */
	unsigned prefix_len;          /* dpdk.prefix_len: on-link subnet of the source IPs, default 24 */
	unsigned mtu;                 /* dpdk.mtu, default 1500 */
	unsigned max_conns;           /* dpdk.max_conns: TCP connection table size, default 65536 */
	char *capture;                /* dpdk.capture: pcap file of every frame; default none */
	uint64_t idle_sleep_ms;       /* dpdk.idle_sleep: loop may sleep this long when quiet; default 0 = busy-poll */
	unsigned workers;             /* dpdk.workers: worker lcores, one queue pair each; default 0 = in the loop */
};

struct sl_config {
	char *path;                   /* the file this came from */
	char *hostname;               /* hostname, default gethostname(); used in banner, Received, DSNs */
	struct sl_listener_cfg *listeners; size_t n_listeners;
	struct sl_tenant_cfg *tenants; size_t n_tenants;
	struct sl_pool_cfg *pools; size_t n_pools;   /* at least one */
	struct sl_route_cfg *routes; size_t n_routes;
	struct sl_dkim_key_cfg *dkim; size_t n_dkim;  /* dkim: signing keys, default none */
	char *shaping_rules;          /* shaping.rules: per-destination rules file; default none (delivery.* for all) */
	char *shaping_providers;      /* shaping.providers: MX-suffix provider table; default none */
	char *warmup_schedules;       /* warmup.schedules: warm-up file (control/warmup.h); default none = no warm-up */
	unsigned warmup_clock_scale;  /* warmup.test_clock_scale: warm-up clock speed, default 1; test only */
	struct sl_limits_cfg limits;
	struct sl_delivery_cfg delivery;
	struct sl_spool_cfg spool;
	struct sl_dns_cfg dns;
	struct sl_dpdk_cfg dpdk;
	char *events_path;            /* events.path, JSON lines; default /var/log/sluice/events.jsonl; "-" = stdout */
	struct sockaddr_storage metrics_addr; /* metrics.address, default 127.0.0.1:9025 */
	socklen_t metrics_addr_len;
	struct sl_control_cfg control;
	struct sl_sender_auth_cfg sender_auth;
	struct sl_bounces_cfg bounces;
	struct sl_link_check_cfg link_check;
	struct sl_dnsbl_cfg dnsbl;
};

/* Fill cfg with every default (and no listeners, tenants, pools, routes). */
void config_defaults(struct sl_config *cfg);

/* Parse path into *out (caller frees with config_free). On failure returns
 * SL_ECONFIG (or -errno if the file cannot be read) and writes
 * "FILE:LINE:COL: message" into err. */
int config_load(const char *path, struct sl_config **out, char *err, size_t errlen);

/* The same, from a YAML document in memory; `name` stands in for FILE. */
int config_load_string(const char *name, const char *yaml, size_t len,
		       struct sl_config **out, char *err, size_t errlen);

void config_free(struct sl_config *cfg);

/* Lookups used on the accept and delivery paths. NULL when absent. */
const struct sl_tenant_cfg *config_tenant_by_user(const struct sl_config *cfg, const char *user);
const struct sl_tenant_cfg *config_tenant_by_name(const struct sl_config *cfg, const char *name);
const struct sl_pool_cfg *config_pool_by_name(const struct sl_config *cfg, const char *name);
/* Most specific route for domain (exact, then "*"), or NULL for MX lookup. */
const struct sl_route_cfg *config_route_for(const struct sl_config *cfg, const char *domain);

/* Does addr fall in network? */
bool cidr_contains(const struct sl_cidr *net, const struct sockaddr *addr);

/* Parse helpers behind the YAML values, for sluicectl flags and tests.
 * Each returns 0 or SL_ECONFIG. A duration ("250ms", "30s", "5m", "2h", "5d",
 * bare number = seconds) is stored in ms; a size ("512", "64k", "25M", "1G",
 * "2T") in bytes; a CIDR ("10.0.0.0/8", "::1/128", a bare address = host)
 * must have no host bits set. */
int config_parse_duration(const char *s, uint64_t *ms);
int config_parse_size(const char *s, uint64_t *bytes);
int config_parse_cidr(const char *s, struct sl_cidr *out);
/* A fraction in [0, 1]: "0.05" or "5%". */
int config_parse_fraction(const char *s, double *out);

/* For the loaders of sluice's other data files (bounce and response rules,
 * thresholds): write "NAME:LINE: message" (no ":LINE" when line is 0) into
 * err (may be NULL) and return SL_ECONFIG. */
int config_error_at(char *err, size_t errlen, const char *name, unsigned line, const char *fmt,
		    ...) __attribute__((format(printf, 5, 6)));

#endif
