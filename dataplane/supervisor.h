/*
 * supervisor.h — telling the service manager how sluiced is doing.
 *
 * Under systemd (Type=notify, WatchdogSec=) sluiced reports READY=1 once its
 * listeners are open and the spool is loaded, STOPPING=1 when it begins a
 * graceful stop, and pings WATCHDOG=1 from the event loop at half the
 * watchdog interval, so a wedged loop (not just a dead process) gets the
 * daemon restarted. Outside systemd ($NOTIFY_SOCKET unset) every call is a
 * cheap no-op. The protocol is libsystemd's sd_notify(3); nothing here
 * blocks or fails the daemon: a service manager that went away is ignored.
 *
 * Single-threaded: call from the event-loop thread only.
 */
#ifndef SL_SUPERVISOR_H
#define SL_SUPERVISOR_H

#include <stdint.h>

struct supervisor {
	uint64_t ping_every_ms; /* 0 = no watchdog */
	uint64_t last_ping_ms;
};

/* Read the watchdog interval from the environment (WATCHDOG_USEC/PID). */
void supervisor_init(struct supervisor *s);
/* READY=1 with a one-line STATUS= for `systemctl status`. */
void supervisor_ready(struct supervisor *s, const char *status);
/* Ping the watchdog if half its interval has passed; now_ms monotonic. */
void supervisor_tick(struct supervisor *s, uint64_t now_ms);
/* STOPPING=1: the graceful stop has begun. */
void supervisor_stopping(struct supervisor *s);

#endif
