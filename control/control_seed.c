/* control_seed.c — config tenants and the first operator token; see control_seed.h. */
#include "control_seed.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int seed_tenant(struct store *st, const struct sl_tenant_cfg *tc, bool *created)
{
	struct store_tenant t = { 0 };
	const char *user = tc->username ? tc->username : tc->name;
	int rc;

	*created = false;
	rc = store_tenant_get(st, tc->name, &t);
	if (rc == SL_ENOTFOUND) {
		memset(&t, 0, sizeof t);
		snprintf(t.name, sizeof t.name, "%s", tc->name);
		t.default_stream = (uint8_t)tc->stream;
		for (int s = 0; s < STORE_STREAMS; s++)
			if (tc->stream_pool[s])
				snprintf(t.streams[s].pool, sizeof t.streams[s].pool, "%s",
					 tc->stream_pool[s]);
		rc = store_tenant_create(st, &t, "config", "declared in the configuration");
		if (rc == 0)
			rc = store_tenant_set_state(st, tc->name, TENANT_EV_OPERATOR_APPROVE, 0,
						    "config", "declared in the configuration", NULL,
						    NULL);
		if (rc < 0)
			return rc;
		*created = true;
	} else if (rc < 0) {
		return rc;
	}
	if (tc->password_hash) {
		rc = store_credential_add_hash(st, user, tc->name, tc->password_hash, "config");
		if (rc < 0 && rc != -EEXIST)
			return rc;
	}
	return 0;
}

static int write_token(const char *dir, const char *token, char *path, size_t pathlen)
{
	int fd, rc = 0;
	size_t n = strlen(token);

	if ((size_t)snprintf(path, pathlen, "%s/%s", dir, CONTROL_TOKEN_FILE) >= pathlen)
		return -ENAMETOOLONG;
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, token, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		rc = -errno ? -errno : -EIO;
	close(fd);
	return rc;
}

int control_seed(struct store *st, const struct sl_config *cfg, const char *dir, char *msg,
		 size_t msglen)
{
	struct store_token_info tok;
	char token[STORE_TOKEN_SIZE], path[4096];
	size_t n, made = 0, off = 0;
	bool more, created;
	int rc;

	msg[0] = 0;
	for (size_t i = 0; i < cfg->n_tenants; i++) {
		rc = seed_tenant(st, &cfg->tenants[i], &created);
		if (rc < 0) {
			snprintf(msg, msglen, "seeding tenant %s: %s", cfg->tenants[i].name,
				 sl_strerror(rc));
			return rc;
		}
		made += created;
	}
	if (made)
		off = (size_t)snprintf(msg, msglen, "control store: %zu tenant(s) from the configuration",
				       made);
	/* Operator tokens have no tenant: list those, one is enough. */
	rc = store_token_list(st, "", NULL, &tok, 1, &n, &more);
	if (rc < 0) {
		snprintf(msg, msglen, "listing tokens: %s", sl_strerror(rc));
		return rc;
	}
	if (n > 0)
		return 0;
	rc = store_token_create(st, NULL, STORE_ROLE_OPERATOR, "config", token, NULL);
	if (rc == 0)
		rc = write_token(dir, token, path, sizeof path);
	memset(token, 0, sizeof token);
	if (rc < 0) {
		snprintf(msg, msglen, "writing the operator token: %s", sl_strerror(rc));
		return rc;
	}
	if (off < msglen)
		snprintf(msg + off, msglen - off, "%soperator API token written to %s",
			 off ? "; " : "", path);
	return 0;
}
