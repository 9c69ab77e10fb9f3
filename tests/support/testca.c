/* Test support: a test CA and server certificates (testca.h), made with
 * the OpenSSL API so that no test depends on the openssl command. */
#include "tests/support/testca.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DAY (24L * 3600L)

/* What one certificate says about itself. */
struct cert_spec {
	const char *cn;
	const char *san;        /* "IP:127.0.0.1", "DNS:wrong.example"; NULL for a CA */
	bool ca;
	long not_before;        /* seconds from now */
	long not_after;
	long serial;
};

static bool add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (ext == NULL)
		return false;
	bool ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

static bool add_extensions(X509 *x, X509 *issuer, const struct cert_spec *s)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	bool ok = add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
		  add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
	if (s->ca)
		return ok && add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") &&
		       add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
	return ok && add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
	       add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") &&
	       add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") &&
	       add_ext(x, &ctx, NID_subject_alt_name, s->san);
}

/* A certificate for key, signed by issuer (NULL: self-signed with key).
 * Allocates; the caller X509_free()s it. NULL on failure. */
static X509 *make_cert(const struct cert_spec *s, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	if (x == NULL)
		return NULL;
	X509_NAME *name = X509_get_subject_name(x);
	bool ok = X509_set_version(x, 2) == 1 &&
		  ASN1_INTEGER_set(X509_get_serialNumber(x), s->serial) == 1 &&
		  X509_gmtime_adj(X509_getm_notBefore(x), s->not_before) != NULL &&
		  X509_gmtime_adj(X509_getm_notAfter(x), s->not_after) != NULL &&
		  X509_set_pubkey(x, key) == 1 &&
		  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					     (const unsigned char *)s->cn, -1, -1, 0) == 1 &&
		  X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer)
						       : name) == 1 &&
		  add_extensions(x, issuer, s) &&
		  X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	int ok = PEM_write_X509(f, x);
	return fclose(f) == 0 && ok == 1 ? 0 : -1;
}

static int write_key(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	int ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	return fclose(f) == 0 && ok == 1 ? 0 : -1;
}

/* A server certificate per spec, signed by ca/ca_key, written to path. */
static int server_cert(const char *path, const struct cert_spec *s, EVP_PKEY *key, X509 *ca,
		       EVP_PKEY *ca_key)
{
	X509 *x = make_cert(s, key, ca, ca_key);
	int rc = x != NULL ? write_cert(path, x) : -1;
	X509_free(x);
	return rc;
}

static void set_paths(struct tca *t)
{
	snprintf(t->ca, sizeof t->ca, "%s/ca.pem", t->dir);
	snprintf(t->key, sizeof t->key, "%s/server-key.pem", t->dir);
	snprintf(t->good, sizeof t->good, "%s/good.pem", t->dir);
	snprintf(t->untrusted, sizeof t->untrusted, "%s/untrusted.pem", t->dir);
	snprintf(t->wronghost, sizeof t->wronghost, "%s/wronghost.pem", t->dir);
	snprintf(t->expired, sizeof t->expired, "%s/expired.pem", t->dir);
}

static int make_all(struct tca *t)
{
	static const struct cert_spec ca_spec = { "multicad test CA", NULL, true, -DAY, 30 * DAY, 1 };
	static const struct cert_spec other_spec = { "nobody's CA", NULL, true, -DAY, 30 * DAY, 2 };
	static const struct cert_spec good = { "127.0.0.1", "IP:127.0.0.1", false, -DAY, 30 * DAY, 10 };
	static const struct cert_spec wrong = { "wrong.example", "DNS:wrong.example", false, -DAY,
						30 * DAY, 11 };
	static const struct cert_spec expired = { "127.0.0.1", "IP:127.0.0.1", false, -3 * DAY,
						  -DAY, 12 };
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	EVP_PKEY *other_key = EVP_EC_gen("P-256");
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *ca = NULL, *other = NULL;
	int rc = -1;
	if (ca_key == NULL || other_key == NULL || key == NULL)
		goto out;
	ca = make_cert(&ca_spec, ca_key, NULL, NULL);
	other = make_cert(&other_spec, other_key, NULL, NULL);
	if (ca == NULL || other == NULL || write_cert(t->ca, ca) < 0 || write_key(t->key, key) < 0 ||
	    server_cert(t->good, &good, key, ca, ca_key) < 0 ||
	    server_cert(t->untrusted, &good, key, other, other_key) < 0 ||
	    server_cert(t->wronghost, &wrong, key, ca, ca_key) < 0 ||
	    server_cert(t->expired, &expired, key, ca, ca_key) < 0)
		goto out;
	rc = 0;
out:
	X509_free(ca);
	X509_free(other);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(key);
	return rc;
}

int tca_make(struct tca *t)
{
	memset(t, 0, sizeof *t);
	const char *tmp = getenv("TMPDIR");
	snprintf(t->dir, sizeof t->dir, "%s/mc-testca-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(t->dir) == NULL) {
		fprintf(stderr, "testca: mkdtemp: %s\n", strerror(errno));
		t->dir[0] = '\0';
		return -1;
	}
	set_paths(t);
	if (make_all(t) < 0) {
		fprintf(stderr, "testca: making the certificates failed\n");
		tca_free(t);
		return -1;
	}
	return 0;
}

void tca_free(struct tca *t)
{
	if (t->dir[0] == '\0')
		return;
	const char *files[] = { t->ca, t->key, t->good, t->untrusted, t->wronghost, t->expired };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (files[i][0] != '\0')
			unlink(files[i]);
	rmdir(t->dir);
	t->dir[0] = '\0';
}
