/* mailbox.c — closures posted to the event loop's thread; see mailbox.h. */
#include "mailbox.h"

#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct mailbox {
	struct loop *loop;
	pthread_t owner;
	int fd;
	struct loop_op op;
	uint64_t ev;
	bool armed;
	pthread_mutex_t mu;
	struct mailbox_msg *head, *tail; /* under mu */
	bool closed;                     /* under mu */
};

struct mailbox_wait {
	struct mailbox_msg msg;
	void (*fn)(struct mailbox_wait *w, void *arg);
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int result;
};

static void arm_read(struct mailbox *mb)
{
	struct io_uring_sqe *sqe = loop_sqe(mb->loop, &mb->op);

	io_uring_prep_read(sqe, mb->fd, &mb->ev, sizeof mb->ev, 0);
	mb->armed = true;
}

/* Run everything queued so far, oldest first. */
static void drain(struct mailbox *mb)
{
	struct mailbox_msg *m, *next;

	pthread_mutex_lock(&mb->mu);
	m = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->mu);
	for (; m; m = next) {
		next = m->next; /* run may free m */
		m->run(m);
	}
}

static void on_event(struct loop_op *op, int res, uint32_t flags)
{
	struct mailbox *mb = (struct mailbox *)((char *)op - offsetof(struct mailbox, op));
	bool closed;

	(void)flags;
	mb->armed = false;
	drain(mb);
	pthread_mutex_lock(&mb->mu);
	closed = mb->closed;
	pthread_mutex_unlock(&mb->mu);
	if (!closed && res != -ECANCELED)
		arm_read(mb);
}

int mailbox_create(struct loop *l, struct mailbox **out)
{
	struct mailbox *mb = calloc(1, sizeof *mb);

	if (!mb)
		return -ENOMEM;
	mb->fd = eventfd(0, EFD_CLOEXEC);
	if (mb->fd < 0) {
		int rc = -errno;

		free(mb);
		return rc;
	}
	pthread_mutex_init(&mb->mu, NULL);
	mb->loop = l;
	mb->owner = pthread_self();
	mb->op.cb = on_event;
	arm_read(mb);
	*out = mb;
	return 0;
}

void mailbox_close(struct mailbox *mb)
{
	pthread_mutex_lock(&mb->mu);
	mb->closed = true;
	pthread_mutex_unlock(&mb->mu);
	drain(mb);
}

void mailbox_destroy(struct mailbox *mb)
{
	if (!mb)
		return;
	mailbox_close(mb);
	/* A read still armed completes (or is dropped) with the ring; the loop
	 * must not run callbacks any more, as mailbox.h requires. */
	close(mb->fd);
	pthread_mutex_destroy(&mb->mu);
	free(mb);
}

bool mailbox_on_loop(const struct mailbox *mb)
{
	return pthread_equal(mb->owner, pthread_self());
}

int mailbox_post(struct mailbox *mb, struct mailbox_msg *msg)
{
	uint64_t one = 1;
	bool wake;

	msg->next = NULL;
	pthread_mutex_lock(&mb->mu);
	if (mb->closed) {
		pthread_mutex_unlock(&mb->mu);
		return -EPIPE;
	}
	wake = mb->head == NULL; /* else a wake-up is already on its way */
	if (mb->tail)
		mb->tail->next = msg;
	else
		mb->head = msg;
	mb->tail = msg;
	pthread_mutex_unlock(&mb->mu);
	/* An eventfd write only fails on counter overflow, which one pending
	 * wake-up per batch cannot reach. */
	if (wake && write(mb->fd, &one, sizeof one) < 0)
		return -errno;
	return 0;
}

static void wait_run(struct mailbox_msg *msg)
{
	struct mailbox_wait *w = (struct mailbox_wait *)msg;

	w->fn(w, w->arg);
}

void mailbox_complete(struct mailbox_wait *w, int result)
{
	pthread_mutex_lock(&w->mu);
	w->result = result;
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int mailbox_await(struct mailbox *mb, void (*fn)(struct mailbox_wait *w, void *arg), void *arg)
{
	struct mailbox_wait w = { .msg.run = wait_run, .fn = fn, .arg = arg };
	int rc;

	if (mailbox_on_loop(mb))
		return -EDEADLK;
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	rc = mailbox_post(mb, &w.msg);
	if (rc == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		rc = w.result;
		pthread_mutex_unlock(&w.mu);
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return rc;
}

struct call_ctx {
	int (*fn)(void *arg);
	void *arg;
};

static void call_run(struct mailbox_wait *w, void *arg)
{
	struct call_ctx *c = arg;

	mailbox_complete(w, c->fn(c->arg));
}

int mailbox_call(struct mailbox *mb, int (*fn)(void *arg), void *arg)
{
	struct call_ctx c = { .fn = fn, .arg = arg };

	return mailbox_await(mb, call_run, &c);
}
