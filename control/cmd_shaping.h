/*
 * cmd_shaping.h — `sluicectl shaping explain`: the effective shaping
 * settings for one (source IP, destination domain) and which rule set gave
 * each, computed offline from the files (no daemon needed).
 *
 *   sluicectl shaping explain --ip IP --domain D [--mx HOST ...] [--pool P]
 *             [--provider NAME] [--site KEY] [--shaping FILE]
 *             [--providers FILE ...] [--json]
 *
 * --mx (repeatable) gives the domain's MX hosts; from them come the provider
 * (providers table) and the site key. Without --mx, provider and site rules
 * are skipped unless --provider / --site name them directly.
 *
 * Files: --shaping, else $SLUICE_SHAPING, else /etc/sluice/shaping.yaml,
 * else ./configs/shaping.yaml. Providers: each --providers in order, else
 * $SLUICE_PROVIDERS, else /etc/sluice/providers.conf or
 * ./configs/providers.conf, followed by /etc/sluice/providers.local.conf
 * when it exists.
 *
 * Called as cmd_shaping(argc - 1, argv + 1) from sluicectl's main, so
 * argv[0] is "shaping". Exit codes: 0 ok, 1 output failed, 2 usage or a
 * file that does not load (its FILE:LINE:COL message on stderr).
 */
#ifndef SL_CMD_SHAPING_H
#define SL_CMD_SHAPING_H

int cmd_shaping(int argc, char **argv);

#endif
