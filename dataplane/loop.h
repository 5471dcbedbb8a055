/*
 * loop.h — the data-plane event loop: one io_uring plus a timer heap.
 *
 * One loop per worker thread; nothing here is thread-safe. Every submitted
 * operation carries a struct loop_op whose callback runs when its completion
 * is reaped (res is the CQE result: bytes, an fd, or a negative errno). The
 * op's memory is owned by the caller and must stay valid until its callback
 * has run; multishot ops may call back many times while IORING_CQE_F_MORE is
 * set in flags.
 *
 * Timers are one-shot, keyed by a monotonic millisecond clock read once per
 * loop iteration (loop_now_ms). Arming an armed timer re-arms it.
 *
 * Submissions are batched: SQEs are handed to the kernel once per iteration
 * (or when the submission queue fills), so many sends/recvs cost one syscall.
 */
#ifndef SL_LOOP_H
#define SL_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;

struct loop_op {
	void (*cb)(struct loop_op *op, int res, uint32_t flags);
};

struct loop_timer {
	void (*cb)(struct loop_timer *t);
	uint64_t expire_ms;
	uint32_t heap_idx; /* 0 = not armed; internal */
};

int loop_create(unsigned entries, struct loop **out);
void loop_destroy(struct loop *l);

/* A submission queue entry tagged with op; flushes the queue when full.
 * Never NULL (aborts only if the ring is unusable). */
struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op);

/* Submit pending SQEs, wait for at least one completion or the next timer
 * (at most max_wait_ms), run completion and timer callbacks. */
int loop_run_once(struct loop *l, uint64_t max_wait_ms);

/* Run hook after each iteration's callbacks (e.g. flush logs, kick queues). */
void loop_set_idle_hook(struct loop *l, void (*hook)(void *), void *arg);

uint64_t loop_now_ms(const struct loop *l); /* monotonic, cached per iteration */
uint64_t loop_wall_ms(void);                /* wall clock, ms since the epoch */

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t)
{
	return t->heap_idx != 0;
}

#endif
