/* supervisor.c — sd_notify readiness, stopping and watchdog; see supervisor.h. */
#include "supervisor.h"

#include <systemd/sd-daemon.h>

void supervisor_init(struct supervisor *s)
{
	uint64_t usec = 0;

	*s = (struct supervisor){ 0 };
	if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000)
		s->ping_every_ms = usec / 2000;
}

void supervisor_ready(struct supervisor *s, const char *status)
{
	(void)s;
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void supervisor_tick(struct supervisor *s, uint64_t now_ms)
{
	if (!s->ping_every_ms || now_ms - s->last_ping_ms < s->ping_every_ms)
		return;
	s->last_ping_ms = now_ms;
	sd_notify(0, "WATCHDOG=1");
}

void supervisor_stopping(struct supervisor *s)
{
	(void)s;
	sd_notify(0, "STOPPING=1");
}
