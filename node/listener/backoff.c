#include "config.h"

#include "node/listener/backoff.h"

static const int backoff_ladder_s[] = { 0, 1, 2, 5, 10, 30 };
#define BACKOFF_RUNGS (sizeof backoff_ladder_s / sizeof backoff_ladder_s[0])

void
backoff_init(struct backoff *b, int64_t stable_ms)
{
	b->step = 0;
	b->up_since_ms = -1;
	b->stable_ms = stable_ms > 0 ? stable_ms : BACKOFF_STABLE_MS_DEFAULT;
}

void
backoff_up(struct backoff *b, int64_t now_ms)
{
	b->up_since_ms = now_ms;
}

void
backoff_down(struct backoff *b, int64_t now_ms)
{
	if (b->up_since_ms >= 0 && now_ms - b->up_since_ms >= b->stable_ms)
		b->step = 0;
	b->up_since_ms = -1;
}

int
backoff_rung_s(unsigned i)
{
	return backoff_ladder_s[i < BACKOFF_RUNGS ? i : BACKOFF_RUNGS - 1];
}

int64_t
backoff_next_ms(struct backoff *b, uint32_t rnd)
{
	int64_t base = (int64_t)backoff_rung_s(b->step) * 1000;
	int64_t span = base > 0 ? base / 5 : 250;

	if (b->step < BACKOFF_RUNGS)
		b->step++;
	return base + (int64_t)(rnd % (uint32_t)(span + 1));
}
