/* Test support: TLS material made at test time with the OpenSSL API, in a
 * mkdtemp dir. A test CA, a second CA nobody trusts, and server
 * certificates (all on one P-256 key) for the emulator's --tls-cert:
 *   good       IP SAN 127.0.0.1, signed by the test CA
 *   untrusted  IP SAN 127.0.0.1, signed by the unknown CA
 *   wronghost  DNS SAN wrong.example only, signed by the test CA
 *   expired    IP SAN 127.0.0.1, signed by the test CA, notAfter yesterday
 * Nothing is kept in memory: every path names a PEM file.
 * Error convention: -1 with a line on stderr. */
#ifndef MC_TEST_TESTCA_H
#define MC_TEST_TESTCA_H

#define TCA_PATH_MAX 320

struct tca {
	char dir[256];
	char ca[TCA_PATH_MAX];          /* the test CA's certificate (ca_file) */
	char key[TCA_PATH_MAX];         /* the server key of every server cert */
	char good[TCA_PATH_MAX];
	char untrusted[TCA_PATH_MAX];
	char wronghost[TCA_PATH_MAX];
	char expired[TCA_PATH_MAX];
};

/* Makes the dir and every file. 0, or -1 (what was made is removed). */
int tca_make(struct tca *t);
/* Removes the files and the dir. Safe on a zeroed or failed tca. */
void tca_free(struct tca *t);

#endif
