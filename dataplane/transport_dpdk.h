/*
 * transport_dpdk.h — sluice's own TCP/IP over a DPDK port: the `dpdk` transport.
 *
 * Pools with `transport: dpdk` open their outbound connections here instead
 * of through the kernel. The process owns one DPDK port (a NIC bound to
 * vfio-pci, or a virtual device such as net_tap in tests); the source IPs
 * of every dpdk pool belong to that port and to nobody else, and the
 * userspace stack (net_stack.h) answers ARP for them and runs TCP. Ingress,
 * DNS and the metrics endpoint stay on the kernel (transport_uring.h).
 * docs/dpdk.md explains the set-up.
 *
 * Two ways to run, one code path for the frames (a "worker": one rx/tx
 * queue pair, one net_stack with its own connection table and ARP cache,
 * one run-to-completion round = commands, rx burst -> net_stack_input ->
 * due timers -> tx burst -> events):
 *
 * - dpdk.workers: 0 (default): one worker, polled by the event loop itself.
 *   The owner calls transport_dpdk_poll() once per loop iteration (sluiced
 *   does it from the loop's idle hook) and runs the loop without blocking
 *   while the transport exists (transport_dpdk_wait_ms). struct conn calls
 *   go straight into the stack, its callbacks straight to the session.
 *   Busy-polling keeps the loop's core at 100% unless dpdk.idle_sleep lets
 *   it sleep after a quiet spell.
 *
 * - dpdk.workers: N >= 1: N workers, each on its own EAL worker lcore
 *   (rte_eal_remote_launch; eal_args must give the loop's lcore plus N),
 *   each on its own queue pair, with RSS spreading flows when the PMD has
 *   it. Sessions stay on the loop thread: conn calls become commands on the
 *   connection's worker's ring, the stack's callbacks become events on a
 *   ring back, which transport_dpdk_poll() (still called from the idle
 *   hook) dispatches. A new connection goes to the least-loaded worker,
 *   whose stack picks a source port from its own slice of the ephemeral
 *   range (net_shard.h) whose RSS hash lands on its own queue; a frame that
 *   arrives on another worker's queue anyway is handed over through the
 *   owner's ring (sluice_dpdk_worker_handovers_total). Each worker keeps its
 *   own ARP cache: ARP replies are copied to every worker, requests are
 *   answered by whichever receives them. The loop no longer busy-polls: a
 *   worker that posts events wakes it through an eventfd when it is parked.
 *   A port with fewer queues than workers gets as many workers as queues
 *   (transport_dpdk_workers tells).
 *
 * Threads and memory (threaded mode): the loop thread owns struct conn and
 * every session; a worker owns its stack, its TCBs and its tx batch. They
 * share nothing but single-producer/single-consumer rte_rings (commands,
 * events; the hand-over ring is multi-producer), whose enqueue/dequeue
 * order memory (release/acquire), an atomic "parked" flag per side and the
 * stats snapshot behind a mutex. Each message is malloc'd by its sender,
 * which never touches it after the enqueue, and freed by its receiver; the
 * bytes of conn_send and on_recv are copied into it. A conn is freed by the
 * loop only when its worker's EV_CLOSED comes back, so no event can name a
 * freed conn. A ring that is full queues on the sender's side (order kept);
 * a full hand-over ring drops the frame (TCP retransmits), counted.
 *
 * EAL can be initialised only once per process, so create is called once.
 * Connections are struct conn (transport.h): egress and the SMTP client
 * run over them unchanged. In threaded mode connect errors other than
 * -EAFNOSUPPORT and -EADDRNOTAVAIL (source IP not on the port) come
 * through on_connect, never from transport_connect.
 *
 * Errors: create returns -EINVAL (bad EAL arguments or port set-up), -ENODEV
 * (no such port / no ports at all), -ENOMEM, or a negative errno from
 * DPDK, and writes a human-readable reason into err.
 */
#ifndef SL_TRANSPORT_DPDK_H
#define SL_TRANSPORT_DPDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "transport.h"

struct transport_dpdk;
struct metrics;

/* Initialise EAL with cfg->dpdk.eal_args, set up the port, and create the
 * stack owning the source IPs of every dpdk pool. Registers the port's and
 * the stack's counters in m (sluice_dpdk_*, sluice_netstack_*, and per
 * worker sluice_dpdk_worker_*{worker="i"}); with workers, starts them. */
int transport_dpdk_create(struct loop *l, const struct sl_config *cfg, struct metrics *m,
			  struct transport_dpdk **out, char *err, size_t errlen);
/* Stop the workers and the port, free the stacks (open connections vanish without a
 * callback: close them first) and clean up EAL. NULL is a no-op. */
void transport_dpdk_destroy(struct transport_dpdk *td);
struct transport *transport_dpdk_base(struct transport_dpdk *td);

/* In the loop: one rx burst, the stack's timers, one tx burst; returns the
 * frames received and sent. With workers: queued commands out, events in
 * (callbacks run here); returns the events dispatched. */
unsigned transport_dpdk_poll(struct transport_dpdk *td);
/* How long the event loop may block before the next poll: 0 while frames
 * keep coming (busy-poll), up to dpdk.idle_sleep (bounded by the stack's
 * next timer) once a few hundred polls in a row found nothing. With
 * workers: 0 when events wait, else it marks the loop parked (a worker
 * then wakes it through an eventfd read armed on l) and returns 200. */
uint64_t transport_dpdk_wait_ms(struct transport_dpdk *td);

/* How many workers carry the port (1 in the loop), whether they run on
 * their own lcores, whether source ports follow the port's RSS hash (RSS
 * on and its key readable; else frames reach their worker by hand-over). */
unsigned transport_dpdk_workers(const struct transport_dpdk *td, bool *threaded, bool *rss);
/* The port's MAC address (for logs). */
void transport_dpdk_mac(const struct transport_dpdk *td, uint8_t mac[6]);

#endif
