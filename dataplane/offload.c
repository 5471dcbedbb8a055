/* offload.c — worker threads for CPU-heavy jobs; see offload.h. */
#include "offload.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct offload {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct offload_job *todo, **todo_tail;
	struct offload_job *done, **done_tail;
	unsigned n_threads;
	pthread_t *threads;
	bool stopping;
	int efd;
};

static void *worker(void *arg)
{
	struct offload *o = arg;

	pthread_mutex_lock(&o->lock);
	for (;;) {
		struct offload_job *j;
		bool was_empty;

		while (!o->todo && !o->stopping)
			pthread_cond_wait(&o->cond, &o->lock);
		if (!o->todo)
			break;
		j = o->todo;
		o->todo = j->next;
		if (!o->todo)
			o->todo_tail = &o->todo;
		pthread_mutex_unlock(&o->lock);
		j->run(j);
		pthread_mutex_lock(&o->lock);
		j->next = NULL;
		was_empty = !o->done;
		*o->done_tail = j;
		o->done_tail = &j->next;
		if (was_empty) {
			uint64_t one = 1;

			if (write(o->efd, &one, sizeof one) < 0) {
				/* the counter cannot overflow here; nothing to do */
			}
		}
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

int offload_create(unsigned n, struct offload **out)
{
	struct offload *o = calloc(1, sizeof *o);
	sigset_t all, old;
	int rc = 0;

	if (!o)
		return -ENOMEM;
	if (!n) {
		free(o);
		return -EINVAL;
	}
	o->threads = calloc(n, sizeof *o->threads);
	o->efd = eventfd(0, EFD_CLOEXEC);
	if (!o->threads || o->efd < 0) {
		rc = o->efd < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	o->todo_tail = &o->todo;
	o->done_tail = &o->done;
	/* Workers never take the daemon's signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (; o->n_threads < n; o->n_threads++) {
		rc = -pthread_create(&o->threads[o->n_threads], NULL, worker, o);
		if (rc)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		offload_destroy(o);
		return rc;
	}
	*out = o;
	return 0;
fail:
	if (o->efd >= 0)
		close(o->efd);
	free(o->threads);
	free(o);
	return rc;
}

void offload_destroy(struct offload *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
	for (unsigned i = 0; i < o->n_threads; i++)
		pthread_join(o->threads[i], NULL);
	offload_reap(o);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	close(o->efd);
	free(o->threads);
	free(o);
}

int offload_submit(struct offload *o, struct offload_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&o->lock);
	*o->todo_tail = job;
	o->todo_tail = &job->next;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	return 0;
}

int offload_fd(const struct offload *o)
{
	return o->efd;
}

size_t offload_reap(struct offload *o)
{
	struct offload_job *list, *next;
	size_t n = 0;

	pthread_mutex_lock(&o->lock);
	list = o->done;
	o->done = NULL;
	o->done_tail = &o->done;
	pthread_mutex_unlock(&o->lock);
	for (; list; list = next) {
		next = list->next;
		list->done(list);
		n++;
	}
	return n;
}
