/* api_client.c — a client of sluiced's admin API; see api_client.h. */
#include "api_client.h"

#include "config.h"
#include "control_seed.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_token(struct api_client *c, const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n;

	snprintf(c->token_file, sizeof c->token_file, "%s", path);
	if (!f)
		return -errno;
	n = fread(c->token, 1, sizeof c->token - 1, f);
	fclose(f);
	c->token[n] = 0;
	c->token[strcspn(c->token, "\r\n \t")] = 0;
	return c->token[0] ? 0 : -ENOENT;
}

int api_client_init(struct api_client *c, const char *url, const char *token,
		    const char *config)
{
	struct sl_config *cfg = NULL;
	const char *env;
	char err[256], path[4096];
	int rc;

	memset(c, 0, sizeof *c);
	if (!config && access("/etc/sluice/sluice.yaml", R_OK) == 0)
		config = "/etc/sluice/sluice.yaml";
	if (config && config_load(config, &cfg, err, sizeof err) < 0)
		cfg = NULL;
	if (url || (url = getenv("SLUICE_API")))
		snprintf(c->url, sizeof c->url, "%s", url);
	else if (cfg && cfg->control.enabled)
		snprintf(c->url, sizeof c->url, "%s://%s", cfg->control.api_tls_cert ? "https" : "http",
			 cfg->control.api_address);
	else
		snprintf(c->url, sizeof c->url, "%s", API_CLIENT_DEFAULT_URL);
	c->url[strcspn(c->url, "\n")] = 0;
	while (c->url[0] && c->url[strlen(c->url) - 1] == '/')
		c->url[strlen(c->url) - 1] = 0;
	if (token || ((env = getenv("SLUICE_TOKEN")) && *env && (token = env))) {
		snprintf(c->token, sizeof c->token, "%s", token);
		rc = 0;
	} else {
		if (cfg && cfg->control.enabled)
			snprintf(path, sizeof path, "%s/%s", cfg->control.store, CONTROL_TOKEN_FILE);
		else
			snprintf(path, sizeof path, "%s", API_CLIENT_DEFAULT_TOKEN_FILE);
		rc = read_token(c, path);
		if (rc < 0) {
			snprintf(c->err, sizeof c->err,
				 "no API token: give --token or SLUICE_TOKEN, or make %.400s readable (%s)",
				 path, strerror(-rc));
			rc = -ENOENT;
		}
	}
	config_free(cfg);
	return rc;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sl_buf *b = arg;

	return sl_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

int api_client_call(struct api_client *c, const char *method, const char *path,
		    const json_t *body, long *status, json_t **out)
{
	struct curl_slist *h = NULL;
	struct sl_buf resp = { 0 };
	char url[2048], auth[STORE_TOKEN_SIZE + 32], *text = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	json_error_t je;
	CURLcode cc;
	CURL *cu;
	int rc = 0;

	*out = NULL;
	*status = 0;
	cu = curl_easy_init();
	if (!cu)
		return -ENOMEM;
	snprintf(url, sizeof url, "%s%s", c->url, path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
	h = curl_slist_append(h, auth);
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, text ? text : "{}");
	}
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	if (getenv("SLUICE_API_INSECURE")) {
		curl_easy_setopt(cu, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(cu, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	cc = curl_easy_perform(cu);
	if (cc != CURLE_OK) {
		const char *why = cerr[0] ? cerr : curl_easy_strerror(cc);

		if (cc == CURLE_COULDNT_CONNECT && strstr(why, "refused"))
			why = "connection refused";
		snprintf(c->err, sizeof c->err, "cannot reach sluiced at %s: %s", c->url, why);
		rc = -ECONNREFUSED;
		goto out;
	}
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status);
	if (resp.len) {
		*out = json_loadb(resp.data, resp.len, 0, &je);
		if (!*out) {
			snprintf(c->err, sizeof c->err, "%s answered %ld with something not JSON",
				 c->url, *status);
			rc = -EBADMSG;
		}
	}
out:
	free(text);
	sl_buf_free(&resp);
	curl_slist_free_all(h);
	curl_easy_cleanup(cu);
	return rc;
}

void api_client_escape(const char *s, char *out, size_t outlen)
{
	static const char hexd[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s && o + 4 < outlen; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '@') {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hexd[ch >> 4];
			out[o++] = hexd[ch & 15];
		}
	}
	out[o] = 0;
}
