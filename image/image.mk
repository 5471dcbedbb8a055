# image/image.mk — system install layout and the appliance image.
# Included by the top-level Makefile, which defines BUILD, DESTDIR, PREFIX
# and BINS. docs/image.md is the manual.
#
#   make install-system [DESTDIR=...] [PREFIX=/usr]
#                     binaries, helper scripts, systemd units, sysusers.d,
#                     tmpfiles.d, logrotate; no /etc/sluice/sluice.yaml (its
#                     absence is the appliance's safe first-boot state)
#   make image        (root) a bootable Debian 12 amd64 disk image:
#                     $(IMAGE_DIR)/sluice.img, raw, MBR, BIOS/GRUB
#   make image-check  fast checks of the units and the install layout
#                     (systemd-analyze verify, a staging DESTDIR install)
#   make image-test   (root; ~15-20 min without KVM) boots the image in qemu
#                     with a DPDK virtio data port and a sink in a network
#                     namespace, delivers mail through it; builds or
#                     rebuilds the image first when its inputs changed.
#                     Exits 77 (skipped, loudly) where it cannot run.

IMAGE_DIR      ?= $(BUILD)/image
IMAGE_ROOT     ?= $(IMAGE_DIR)/root
IMAGE_OUT      ?= $(IMAGE_DIR)/sluice.img
IMAGE_PACKAGES ?= image/packages.txt
# Pin the package versions too by building from a snapshot of the archive,
# e.g. IMAGE_SNAPSHOT=20250520T000000Z (then the mirror is snapshot.debian.org).
IMAGE_SNAPSHOT ?=
ifneq ($(IMAGE_SNAPSHOT),)
IMAGE_MIRROR   ?= http://snapshot.debian.org/archive/debian/$(IMAGE_SNAPSHOT)
else
IMAGE_MIRROR   ?= http://deb.debian.org/debian
endif
# How `make image` calls back into make for install-system (override to
# test this file before the top-level Makefile includes it).
IMAGE_MAKE     ?= $(MAKE)
# Tools the image build needs on the build host (Debian 12).
IMAGE_HOST_PKGS := debootstrap e2fsprogs dosfstools mtools fdisk grub-pc-bin

SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
SLUICE_LIBEXEC  ?= $(PREFIX)/lib/sluice
SLUICE_SHARE    ?= $(PREFIX)/share/sluice
IMAGE_UNITS     := sluiced.service sluice-dataplane-prep.service sluice-firstboot.service \
		   sluice-firewall.service
# Units and config files name programs by these placeholders.
IMAGE_SUBST     := sed -e 's|@sbindir@|$(PREFIX)/sbin|g' -e 's|@bindir@|$(PREFIX)/bin|g' \
		   -e 's|@libexecdir@|$(SLUICE_LIBEXEC)|g' -e 's|@datadir@|$(SLUICE_SHARE)|g'

.PHONY: install-system image image-deps image-check image-test

install-system: $(BUILD)/sluiced $(BUILD)/sluicectl
	install -D -m 0755 $(BUILD)/sluiced $(DESTDIR)$(PREFIX)/sbin/sluiced
	install -D -m 0755 $(BUILD)/sluicectl $(DESTDIR)$(PREFIX)/bin/sluicectl
	install -D -m 0755 image/scripts/sluice-setup $(DESTDIR)$(PREFIX)/sbin/sluice-setup
	install -D -m 0755 image/scripts/sluice-firewall $(DESTDIR)$(SLUICE_LIBEXEC)/sluice-firewall
	install -D -m 0755 image/scripts/sluice-dataplane-prep $(DESTDIR)$(SLUICE_LIBEXEC)/sluice-dataplane-prep
	install -d -m 0755 $(DESTDIR)$(SYSTEMD_UNITDIR)
	set -e; for u in $(IMAGE_UNITS); do \
		$(IMAGE_SUBST) image/systemd/$$u >$(DESTDIR)$(SYSTEMD_UNITDIR)/$$u; \
		chmod 0644 $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u; done
	install -D -m 0644 image/systemd/sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/sluice.conf
	$(IMAGE_SUBST) image/systemd/tmpfiles.conf >$(BUILD)/sluice-tmpfiles.conf
	install -D -m 0644 $(BUILD)/sluice-tmpfiles.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/sluice.conf
	rm -f $(BUILD)/sluice-tmpfiles.conf
	install -D -m 0644 image/etc/logrotate.conf $(DESTDIR)/etc/logrotate.d/sluice
	install -D -m 0644 image/etc/dataplane.env $(DESTDIR)$(SLUICE_SHARE)/dataplane.env
	install -D -m 0644 image/etc/sluiced-dpdk.conf $(DESTDIR)$(SLUICE_SHARE)/sluiced-dpdk.conf
	install -D -m 0644 image/seed.example $(DESTDIR)$(SLUICE_SHARE)/seed.example
	set -e; for f in bounce-rules.conf providers.conf shaping.yaml warmup.yaml \
		 response-rules.conf policy.yaml; do \
		install -D -m 0644 configs/$$f $(DESTDIR)/etc/sluice/$$f; done
	install -D -m 0644 configs/sluice.yaml $(DESTDIR)$(SLUICE_SHARE)/sluice.yaml.example
	install -d -m 0755 $(DESTDIR)/etc/sluice
	install -d -m 0750 $(DESTDIR)/var/lib/sluice $(DESTDIR)/var/lib/sluice/spool \
		$(DESTDIR)/var/lib/sluice/control $(DESTDIR)/var/log/sluice

image-deps:
	@command -v debootstrap >/dev/null && command -v mcopy >/dev/null && \
	 command -v mkfs.vfat >/dev/null && command -v sfdisk >/dev/null && \
	 test -e /usr/lib/grub/i386-pc/boot.img || \
	 DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(IMAGE_HOST_PKGS)

# Needs root. Several minutes: most of it is debootstrap and apt.
image: image-deps $(BUILD)/sluiced $(BUILD)/sluicectl
	image/scripts/build-image rootfs $(IMAGE_ROOT) $(IMAGE_PACKAGES) $(IMAGE_MIRROR)
	$(IMAGE_MAKE) install-system DESTDIR=$(abspath $(IMAGE_ROOT)) PREFIX=/usr
	image/scripts/build-image finalize $(IMAGE_ROOT)
	chroot $(IMAGE_ROOT) dpkg-query -W -f '$${Package}=$${Version}\n' >$(IMAGE_DIR)/manifest.txt
	image/scripts/build-image disk $(IMAGE_ROOT) $(IMAGE_OUT)
	rm -rf $(IMAGE_ROOT)
	@echo "image: $(IMAGE_OUT) (packages: $(IMAGE_DIR)/manifest.txt)"

image-check: $(BUILD)/sluiced $(BUILD)/sluicectl
	SLUICE_BUILD=$(BUILD) /usr/bin/python3 -m pytest -q tests/e2e/test_install.py -p no:cacheprovider --noconftest

# What the image is made of: a change to any of these rebuilds it for image-test.
IMAGE_INPUTS := $(BUILD)/sluiced $(BUILD)/sluicectl $(IMAGE_PACKAGES) image/image.mk image/seed.example \
		$(filter-out image/scripts/image-test,$(wildcard image/scripts/* image/systemd/* image/etc/*)) \
		configs/sluice.yaml
IMAGE_TEST_DIR ?= $(IMAGE_DIR)/test

$(IMAGE_OUT): $(IMAGE_INPUTS)
	$(IMAGE_MAKE) image

# Exit 77 = skipped (no root, qemu, tap devices or Debian mirror here): the
# script says so in capitals; make then reports "Error 77".
image-test: $(BUILD)/sluice-sink
	@image/scripts/image-test --check-host
	@[ -f $(IMAGE_OUT) ] || image/scripts/image-test --check-build $(IMAGE_MIRROR)
	$(MAKE) $(IMAGE_OUT)
	rm -rf $(IMAGE_TEST_DIR)
	image/scripts/image-test $(IMAGE_OUT) $(BUILD)/sluice-sink $(IMAGE_TEST_DIR)
