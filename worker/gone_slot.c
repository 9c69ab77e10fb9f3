#include "worker/gone_slot.h"

bool mc_gone_slot_try_claim(struct mc_gone_slot *s, mc_ms_t entry_at, mc_ms_t now)
{
	if (s->next_attempt != 0 && now < s->next_attempt)
		return false;
	if (s->last_completed != 0 && s->last_completed >= entry_at)
		return false;
	s->next_attempt = now + MC_GONE_COALESCE_MS;
	return true;
}

void mc_gone_slot_complete(struct mc_gone_slot *s, bool success, mc_ms_t now)
{
	if (success) {
		s->last_completed = now;
		s->next_attempt = 0;
	} else {
		s->next_attempt = now + MC_GONE_FAILURE_BACKOFF_MS;
	}
}
