/* loop.c — io_uring event loop with a binary-heap timer queue; see loop.h. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

struct loop {
	struct io_uring ring;
	uint64_t now_ms;
	struct loop_timer **heap; /* 1-based binary min-heap */
	uint32_t n_heap, cap_heap;
	void (*idle_hook)(void *);
	void *idle_arg;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t loop_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int loop_create(unsigned entries, struct loop **out)
{
	struct io_uring_params p = { 0 };
	struct loop *l;
	int rc;

	l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
	p.flags |= IORING_SETUP_CQSIZE;
	p.cq_entries = entries * 4;
	rc = io_uring_queue_init_params(entries, &l->ring, &p);
	if (rc == -EINVAL) { /* older kernel: no COOP_TASKRUN */
		p = (struct io_uring_params){ .flags = IORING_SETUP_CQSIZE,
					      .cq_entries = entries * 4 };
		rc = io_uring_queue_init_params(entries, &l->ring, &p);
	}
	if (rc < 0) {
		free(l);
		return rc;
	}
	l->now_ms = mono_ms();
	*out = l;
	return 0;
}

void loop_destroy(struct loop *l)
{
	if (!l)
		return;
	io_uring_queue_exit(&l->ring);
	free(l->heap);
	free(l);
}

struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	while (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
		if (!sqe)
			abort(); /* the ring is unusable: nothing sane to do */
	}
	io_uring_sqe_set_data(sqe, op);
	return sqe;
}

void loop_set_idle_hook(struct loop *l, void (*hook)(void *), void *arg)
{
	l->idle_hook = hook;
	l->idle_arg = arg;
}

uint64_t loop_now_ms(const struct loop *l)
{
	return l->now_ms;
}

/* --- timer heap ------------------------------------------------------- */

static void heap_set(struct loop *l, uint32_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->heap_idx = i;
}

static void heap_up(struct loop *l, uint32_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 1 && l->heap[i / 2]->expire_ms > t->expire_ms) {
		heap_set(l, i, l->heap[i / 2]);
		i /= 2;
	}
	heap_set(l, i, t);
}

static void heap_down(struct loop *l, uint32_t i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		uint32_t c = i * 2;

		if (c > l->n_heap)
			break;
		if (c + 1 <= l->n_heap && l->heap[c + 1]->expire_ms < l->heap[c]->expire_ms)
			c++;
		if (l->heap[c]->expire_ms >= t->expire_ms)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	uint32_t i = t->heap_idx;
	struct loop_timer *last;

	if (!i)
		return;
	t->heap_idx = 0;
	last = l->heap[l->n_heap--];
	if (last == t)
		return;
	heap_set(l, i, last);
	heap_up(l, i);
	heap_down(l, last->heap_idx);
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t delay_ms)
{
	loop_timer_cancel(l, t);
	if (l->n_heap + 2 > l->cap_heap) {
		uint32_t cap = l->cap_heap ? l->cap_heap * 2 : 1024;
		struct loop_timer **h = realloc(l->heap, cap * sizeof *h);

		if (!h)
			abort(); /* timers are tiny; out of memory here is fatal */
		l->heap = h;
		l->cap_heap = cap;
	}
	t->expire_ms = l->now_ms + delay_ms;
	l->n_heap++;
	heap_set(l, l->n_heap, t);
	heap_up(l, l->n_heap);
}

static void run_timers(struct loop *l)
{
	while (l->n_heap && l->heap[1]->expire_ms <= l->now_ms) {
		struct loop_timer *t = l->heap[1];

		loop_timer_cancel(l, t);
		t->cb(t);
	}
}

/* --- main iteration ----------------------------------------------------- */

int loop_run_once(struct loop *l, uint64_t max_wait_ms)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	uint64_t wait = max_wait_ms;
	unsigned head, n = 0;
	int rc;

	if (l->n_heap) {
		uint64_t next = l->heap[1]->expire_ms;

		wait = next <= l->now_ms ? 0 : next - l->now_ms;
		if (wait > max_wait_ms)
			wait = max_wait_ms;
	}
	ts.tv_sec = (long long)(wait / 1000);
	ts.tv_nsec = (long long)(wait % 1000) * 1000000;
	rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
		return rc;
	l->now_ms = mono_ms();
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		struct loop_op *op = io_uring_cqe_get_data(cqe);

		n++;
		if (op)
			op->cb(op, cqe->res, cqe->flags);
	}
	io_uring_cq_advance(&l->ring, n);
	run_timers(l);
	if (l->idle_hook)
		l->idle_hook(l->idle_arg);
	return 0;
}
