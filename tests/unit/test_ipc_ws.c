/* The push channel's frames (ipc/ws_msgs.h): what each side sends and
 * refuses, and which side may receive which. */
#include <errno.h>
#include <string.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "ipc/messages.h"
#include "ipc/ws_msgs.h"

#define WS "0c6e7a1e-1111-4a4a-8b8b-000000000001"

TestSuite(ipc_ws, .timeout = 30);

/* The one frame queued on w. */
static struct mc_ipc_frame queued(const struct mc_ipc_writer *w)
{
	uint16_t type = 0;
	uint32_t len = 0;
	cr_assert_geq(w->tail - w->head, MC_IPC_HEADER_SIZE);
	cr_assert_eq(mc_ipc_header_decode(w->buf + w->head, mc_ipc_type_ok_from_link, &type, &len) == 0 ||
			     mc_ipc_header_decode(w->buf + w->head, mc_ipc_type_ok_for_worker, &type, &len) == 0,
		     1);
	return (struct mc_ipc_frame){ type, len, w->buf + w->head + MC_IPC_HEADER_SIZE };
}

static struct mc_ipc_frame raw(uint16_t type, const char *json)
{
	return (struct mc_ipc_frame){ type, (uint32_t)strlen(json), (const uint8_t *)json };
}

Test(ipc_ws, profiles_changed_round_trip)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	struct mc_push_msg m = { .event = MC_PUSH_PROFILES_CHANGED }, back;
	strlcpy(m.workspace_id, WS, sizeof m.workspace_id);
	cr_assert_eq(mc_ipc_send_push(&w, &m), 0);
	struct mc_ipc_frame f = queued(&w);
	cr_assert_eq(f.type, MC_IPC_PUSH);
	char err[128] = "";
	cr_assert_eq(mc_ipc_parse_push(&f, &back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back.event, MC_PUSH_PROFILES_CHANGED);
	cr_assert_str_eq(back.workspace_id, WS);
	mc_ipc_writer_free(&w);
}

Test(ipc_ws, workspaces_changed_has_no_workspace)
{
	char err[128] = "";
	struct mc_push_msg m;
	struct mc_ipc_frame f = raw(MC_IPC_PUSH, "{\"event\":\"workspaces_changed\"}");
	cr_assert_eq(mc_ipc_parse_push(&f, &m, err, sizeof err), 0, "%s", err);
	cr_assert_eq(m.event, MC_PUSH_WORKSPACES_CHANGED);
	cr_assert_str_empty(m.workspace_id);
}

Test(ipc_ws, bad_pushes_are_named)
{
	static const struct { const char *json, *why; } bad[] = {
		{ "{\"event\":\"task_available\"}", "not a push event" },
		{ "{\"event\":\"profiles_changed\"}", "workspace_id" },
		{ "{\"event\":\"profiles_changed\",\"workspace_id\":\"../x\"}", "not a UUID" },
		{ "[]", "" },
		{ "{\"event\":7}", "event" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[128] = "";
		struct mc_push_msg m;
		struct mc_ipc_frame f = raw(MC_IPC_PUSH, bad[i].json);
		cr_assert_eq(mc_ipc_parse_push(&f, &m, err, sizeof err), -1, "%s parsed", bad[i].json);
		cr_assert_eq(errno, EPROTO);
		cr_assert_neq(err[0], '\0');
		cr_assert(strstr(err, bad[i].why) != NULL, "%s: %s", bad[i].json, err);
	}
}

Test(ipc_ws, sender_refuses_a_profiles_push_without_workspace)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	struct mc_push_msg m = { .event = MC_PUSH_PROFILES_CHANGED };
	cr_assert_eq(mc_ipc_send_push(&w, &m), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(w.tail, w.head, "nothing queued");
	cr_assert_eq(mc_ipc_send_sync_now(&w, ""), -1);
	cr_assert_eq(errno, EINVAL);
	mc_ipc_writer_free(&w);
}

Test(ipc_ws, push_state_and_sync_now)
{
	char err[128] = "", reason[MC_SYNC_REASON_MAX];
	bool up = false;
	struct mc_ipc_frame f = raw(MC_IPC_PUSH_STATE, "{\"up\":true}");
	cr_assert_eq(mc_ipc_parse_push_state(&f, &up, err, sizeof err), 0);
	cr_assert(up);
	f = raw(MC_IPC_PUSH_STATE, "{\"up\":1}");
	cr_assert_eq(mc_ipc_parse_push_state(&f, &up, err, sizeof err), -1);
	cr_assert(strstr(err, "up") != NULL);
	f = raw(MC_IPC_SYNC_NOW, "{\"reason\":\"reconnect\"}");
	cr_assert_eq(mc_ipc_parse_sync_now(&f, reason, sizeof reason, err, sizeof err), 0);
	cr_assert_str_eq(reason, "reconnect");
}

Test(ipc_ws, who_may_receive_what)
{
	cr_assert(mc_ipc_type_ok_from_link(MC_IPC_PUSH));
	cr_assert(mc_ipc_type_ok_from_link(MC_IPC_PUSH_STATE));
	cr_assert_not(mc_ipc_type_ok_from_link(MC_IPC_SYNC_NOW));
	cr_assert(mc_ipc_type_ok_for_worker(MC_IPC_SYNC_NOW));
	cr_assert(mc_ipc_type_ok_for_worker(MC_IPC_PUSH_STATE));
	cr_assert_not(mc_ipc_type_ok_for_worker(MC_IPC_PUSH));
	cr_assert_not(mc_ipc_type_ok_for_supervisor(MC_IPC_PUSH), "a worker never pushes");
	cr_assert_not(mc_ipc_type_ok_for_link(MC_IPC_PUSH));
	cr_assert_str_eq(mc_ipc_type_name(MC_IPC_SYNC_NOW), "SYNC_NOW");
}
