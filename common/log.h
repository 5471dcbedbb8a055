/*
 * log.h — the daemon's diagnostic log (not the delivery event log; see
 * dataplane/events.h). Lines go to stderr, which systemd's journald or the
 * test harness captures: "LEVEL component: message". Only the binaries'
 * edges call these; library modules return errors instead.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

enum sl_log_level { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERR };

/* Lines below this level are dropped. Default SL_LOG_INFO. */
void sl_log_set_level(enum sl_log_level level);

void sl_log(enum sl_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define sl_debug(...) sl_log(SL_LOG_DEBUG, __VA_ARGS__)
#define sl_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_err(...) sl_log(SL_LOG_ERR, __VA_ARGS__)

#endif
