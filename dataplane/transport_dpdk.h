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
 * Run-to-completion inside the existing event loop: the owner calls
 * transport_dpdk_poll() once per loop iteration (sluiced does it from the
 * loop's idle hook) and runs the loop without blocking while the transport
 * exists (transport_dpdk_wait_ms). Each poll receives one burst and feeds
 * every frame to the stack, fires the stack's due timers, and sends the
 * frames the stack produced since the last poll in one rte_eth_tx_burst.
 * Busy-polling keeps one core at 100% even when there is no traffic,
 * unless dpdk.idle_sleep lets the loop sleep after a quiet spell.
 *
 * One transport (one rx/tx queue pair, one net_stack) per process today:
 * EAL can be initialised only once per process, so create is called once.
 * Connections are struct conn (transport.h): egress and the SMTP client
 * run over them unchanged.
 *
 * Errors: create returns -EINVAL (bad EAL arguments or port set-up), -ENODEV
 * (no such port / no ports at all), -ENOMEM, or a negative errno from
 * DPDK, and writes a human-readable reason into err.
 */
#ifndef SL_TRANSPORT_DPDK_H
#define SL_TRANSPORT_DPDK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "transport.h"

struct transport_dpdk;
struct metrics;

/* Initialise EAL with cfg->dpdk.eal_args, set up the port, and create the
 * stack owning the source IPs of every dpdk pool. Registers the port's and
 * the stack's counters in m (sluice_dpdk_*). */
int transport_dpdk_create(struct loop *l, const struct sl_config *cfg, struct metrics *m,
			  struct transport_dpdk **out, char *err, size_t errlen);
/* Stop the port, free the stack (open connections vanish without a
 * callback: close them first) and clean up EAL. NULL is a no-op. */
void transport_dpdk_destroy(struct transport_dpdk *td);
struct transport *transport_dpdk_base(struct transport_dpdk *td);

/* One rx burst, the stack's timers, one tx burst. Returns the number of
 * frames received and sent. */
unsigned transport_dpdk_poll(struct transport_dpdk *td);
/* How long the event loop may block before the next poll: 0 while frames
 * keep coming (busy-poll), up to dpdk.idle_sleep (bounded by the stack's
 * next timer) once a few hundred polls in a row found nothing. */
uint64_t transport_dpdk_wait_ms(const struct transport_dpdk *td);

/* The port's MAC address (for logs). */
void transport_dpdk_mac(const struct transport_dpdk *td, uint8_t mac[6]);

#endif
