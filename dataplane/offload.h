/*
 * offload.h — run CPU-heavy work (DKIM signing) off the event loop.
 *
 * A small pool of worker threads takes jobs from the event-loop thread,
 * runs job->run on a worker, and hands the finished job back: the loop
 * polls offload_fd() (an eventfd) and calls offload_reap(), which runs
 * job->done on the loop thread in submission order per worker. The job's
 * memory belongs to the submitter until done has run.
 *
 * One eventfd write per batch of finished jobs, so a busy pool costs the
 * loop one wake-up per batch, not per job.
 */
#ifndef SL_OFFLOAD_H
#define SL_OFFLOAD_H

#include <stddef.h>

struct offload;

struct offload_job {
	void (*run)(struct offload_job *job);  /* on a worker thread */
	void (*done)(struct offload_job *job); /* back on the loop thread */
	struct offload_job *next;              /* internal */
};

/* Start n worker threads (n >= 1). */
int offload_create(unsigned n, struct offload **out);
/* Finish every submitted job (running done for each), stop the threads. */
void offload_destroy(struct offload *o);
int offload_submit(struct offload *o, struct offload_job *job);
int offload_fd(const struct offload *o);
/* Run done for every finished job; returns how many. Reads the eventfd. */
size_t offload_reap(struct offload *o);

#endif
