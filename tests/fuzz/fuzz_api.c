/* libFuzzer target: every decoder of a server response, and the profile
 * signature over whatever profile list decodes. The first byte picks the
 * decoder (and the register answer's expected count); the rest is the body.
 * Properties: no crash, no leak, a decode error always names a reason, and
 * the signature does not depend on the order of the profiles. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/api.h"
#include "common/api_codec.h"
#include "common/profile.h"
#include "common/signature.h"

#define CHECK(cond)                     \
	do {                            \
		if (!(cond))            \
			abort();        \
	} while (0)

static void check_error(int rc, const struct mc_api_error *e)
{
	if (rc < 0)
		CHECK(e->kind != MC_API_OK && e->message[0] != '\0');
}

static void signature_order_free(struct mc_profile_list *l)
{
	struct mc_signature a, b;
	if (mc_signature_compute(l, &a) < 0)
		return;
	/* reverse in place: the same set in another order */
	for (size_t i = 0; i < l->n / 2; i++) {
		struct mc_profile t = l->v[i];
		l->v[i] = l->v[l->n - 1 - i];
		l->v[l->n - 1 - i] = t;
	}
	if (mc_signature_compute(l, &b) < 0)
		return;
	CHECK(mc_signature_equal(&a, &b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	struct mc_api_error err;
	memset(&err, 0, sizeof err);
	int rc;
	switch (sel % 6) {
	case 0: {
		struct mc_workspace_list l = { 0 };
		rc = mc_decode_workspaces(body, len, &l, &err);
		check_error(rc, &err);
		mc_workspace_list_clear(&l);
		break;
	}
	case 1: {
		struct mc_profile_list l = { 0 };
		rc = mc_decode_profiles(body, len, &l, &err);
		check_error(rc, &err);
		if (rc == 0)
			signature_order_free(&l);
		mc_profile_list_clear(&l);
		break;
	}
	case 2: {
		struct mc_runtime_list l = { 0 };
		rc = mc_decode_register(body, len, (sel / 6) % 8, &l, &err);
		check_error(rc, &err);
		mc_runtime_list_clear(&l);
		break;
	}
	case 3:
		check_error(mc_decode_heartbeat(body, len, &err), &err);
		break;
	case 4: {
		long o = 0, r = 0;
		check_error(mc_decode_recover(body, len, &o, &r, &err), &err);
		break;
	}
	default:
		mc_classify_http_error("POST /api/daemon/register", 400 + (long)(sel % 200), body,
				       len, &err);
		CHECK(err.kind != MC_API_OK);
		break;
	}
	return 0;
}
