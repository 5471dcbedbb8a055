/* log.c — stderr diagnostic log; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static enum sl_log_level min_level = SL_LOG_INFO;

void sl_log_set_level(enum sl_log_level level)
{
	min_level = level;
}

void sl_log(enum sl_log_level level, const char *fmt, ...)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	char line[2048];
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", names[level], line);
}
