"""The appliance's install layout and first-boot tools (image/, docs/image.md).

Self-contained (no network, no conftest fixtures), a few seconds: runs in
`make e2e` and alone via `make image-check` (pytest --noconftest).
"""
import base64
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("SLUICE_BUILD", "build")
SLUICED = BUILD / "sluiced"
SLUICECTL = BUILD / "sluicectl"
SETUP = ROOT / "image/scripts/sluice-setup"
FIREWALL = ROOT / "image/scripts/sluice-firewall"
PREP = ROOT / "image/scripts/sluice-dataplane-prep"
PY = "/usr/bin/python3"  # the interpreter the scripts run with on the appliance

SEED = """\
hostname=mta.example.test
mgmt_interface=ens3
mgmt_address=10.0.0.5/24
mgmt_gateway=10.0.0.1
dns=10.0.0.53
data_interface=ens4
data_ips=198.51.100.10/24, 198.51.100.11/24
data_gateway=198.51.100.1
ehlo=mta1.example.test,mta2.example.test   # one per IP
relay_networks=10.0.0.0/24
tenant=acme
tenant_password="pa ss#word"
metrics=10.0.0.5:9025
"""


def make_install(destdir):
    """`make install-system` whether or not the Makefile includes image.mk yet."""
    makefile = (ROOT / "Makefile").read_text()
    files = [] if "image/image.mk" in makefile else ["-f", "Makefile", "-f", "image/image.mk"]
    # -o: install the binaries that are there (make e2e has built them); the
    # test must not rebuild the tree.
    return subprocess.run(["make", "-s", "-C", str(ROOT), *files, f"BUILD={BUILD}",
                           "-o", str(SLUICED), "-o", str(SLUICECTL),
                           "install-system", f"DESTDIR={destdir}"],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    d = tmp_path_factory.mktemp("destdir")
    r = make_install(d)
    assert r.returncode == 0, r.stdout + r.stderr
    return d


def test_install_layout(staged):
    for p, mode in [("usr/sbin/sluiced", 0o755), ("usr/bin/sluicectl", 0o755),
                    ("usr/sbin/sluice-setup", 0o755),
                    ("usr/lib/sluice/sluice-firewall", 0o755),
                    ("usr/lib/sluice/sluice-dataplane-prep", 0o755),
                    ("usr/lib/systemd/system/sluiced.service", 0o644),
                    ("usr/lib/systemd/system/sluice-dataplane-prep.service", 0o644),
                    ("usr/lib/systemd/system/sluice-firstboot.service", 0o644),
                    ("usr/lib/systemd/system/sluice-firewall.service", 0o644),
                    ("usr/lib/sysusers.d/sluice.conf", 0o644),
                    ("usr/lib/tmpfiles.d/sluice.conf", 0o644),
                    ("etc/logrotate.d/sluice", 0o644),
                    ("usr/share/sluice/dataplane.env", 0o644),
                    ("usr/share/sluice/sluice.yaml.example", 0o644),
                    ("usr/share/sluice/seed.example", 0o644),
                    ("var/lib/sluice/spool", 0o750), ("var/lib/sluice/control", 0o750),
                    ("var/log/sluice", 0o750), ("etc/sluice", 0o755)]:
        f = staged / p
        assert f.exists(), p
        assert stat.S_IMODE(f.stat().st_mode) == mode, p
    # The safe first-boot state: no configuration, so sluiced does not start.
    assert not (staged / "etc/sluice/sluice.yaml").exists()


def test_units_reference_installed_programs(staged):
    unitdir = staged / "usr/lib/systemd/system"
    for unit in unitdir.glob("sluice*.service"):
        text = unit.read_text()
        assert "@" not in text.replace("@tty", "").replace("serial-getty@", "").replace("getty@", ""), unit
        for line in text.splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=", "ExecReload=")):
                prog = line.split("=", 1)[1].lstrip("+-!@").split()[0]
                if prog.startswith("/usr/"):
                    assert (staged / prog.lstrip("/")).is_file(), f"{unit.name}: {prog}"
    tmpfiles = (staged / "usr/lib/tmpfiles.d/sluice.conf").read_text()
    assert "/usr/share/sluice/dataplane.env" in tmpfiles
    unit = (unitdir / "sluiced.service").read_text()
    for opt in ("User=sluice", "ConditionPathExists=/etc/sluice/sluice.yaml", "NoNewPrivileges=yes",
                "ProtectSystem=strict", "PrivateTmp=yes", "Restart=on-failure",
                "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                "ExecStartPre=/usr/sbin/sluiced -n -c /etc/sluice/sluice.yaml"):
        assert opt in unit, opt


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_units_verify(staged):
    units = sorted(str(u) for u in (staged / "usr/lib/systemd/system").glob("sluice*.service"))
    r = subprocess.run(["systemd-analyze", f"--root={staged}", "verify", *units],
                       capture_output=True, text=True)
    # Only our units' own problems count (the staging root has no other units).
    ours = [ln for ln in r.stderr.splitlines()
            if "sluice" in ln and "not found" not in ln.lower() and "No such file" not in ln]
    assert not ours, r.stderr


def run_setup(tmp_path, seed, *extra, env=None):
    f = tmp_path / "seed.conf"
    f.write_text(seed)
    e = dict(os.environ, SLUICE_NO_SEED_PARTITION="1", SLUICE_CMDLINE="")
    e.update(env or {})
    return subprocess.run([PY, str(SETUP), "--root", str(tmp_path / "root"),
                           "--sluiced", str(SLUICED), "--sluicectl", str(SLUICECTL), *extra],
                          capture_output=True, text=True, env=e, timeout=60)


def test_setup_from_seed_writes_a_valid_config(tmp_path):
    r = run_setup(tmp_path, SEED, "--from-seed", str(tmp_path / "seed.conf"))
    assert r.returncode == 0, r.stderr
    root = tmp_path / "root"
    conf = root / "etc/sluice/sluice.yaml"
    c = subprocess.run([str(SLUICED), "-n", "-c", str(conf)], capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    text = conf.read_text()
    assert "pa ss#word" not in text and "$pbkdf2-sha256$" in text
    assert "198.51.100.11" in text and "mta2.example.test" in text
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert (root / "etc/hostname").read_text() == "mta.example.test\n"
    assert "Address=10.0.0.5/24" in (root / "etc/systemd/network/10-sluice-mgmt.network").read_text()
    data = (root / "etc/systemd/network/20-sluice-data.network").read_text()
    assert "Address=198.51.100.10/24" in data and "From=198.51.100.11/32" in data
    assert (root / "etc/sluice/admin-token.hash").read_text().startswith("$pbkdf2-sha256$")
    assert stat.S_IMODE((root / "root/sluice-admin-token").stat().st_mode) == 0o600
    assert (root / "etc/sluice/tls/cert.pem").exists()
    # A second run does not clobber a configuration ...
    r = run_setup(tmp_path, SEED, "--from-seed", str(tmp_path / "seed.conf"))
    assert r.returncode == 2 and "exists" in r.stderr
    # ... and at first boot an existing one means nothing to do.
    r = run_setup(tmp_path, SEED, "--firstboot")
    assert r.returncode == 0 and r.stderr == ""

    fw = subprocess.run([PY, str(FIREWALL), "-c", str(conf), "--env", "/nonexistent"],
                        capture_output=True, text=True)
    assert fw.returncode == 0, fw.stderr
    assert "ip daddr 10.0.0.5 tcp dport 587 accept" in fw.stdout
    assert "ip daddr 10.0.0.5 tcp dport 9025 accept" in fw.stdout
    assert "policy drop" in fw.stdout
    if os.geteuid() == 0 and shutil.which("nft") and shutil.which("unshare"):
        chk = subprocess.run(["unshare", "-n", "nft", "-c", "-f", "-"], input=fw.stdout,
                             capture_output=True, text=True)
        assert chk.returncode == 0, chk.stderr


def test_setup_minimal_seed_from_kernel_cmdline(tmp_path):
    b64 = base64.b64encode(b"hostname=box.example.test\nmgmt_interface=eth0\n").decode()
    cmdline = (f"ro quiet sluice.seed=base64:{b64} sluice.seed.data_interface=eth0 "
               "sluice.seed.data_ips=203.0.113.7/24 sluice.seed.tls=no")
    r = run_setup(tmp_path, "", "--firstboot", env={"SLUICE_CMDLINE": cmdline})
    assert r.returncode == 0, r.stderr
    conf = tmp_path / "root/etc/sluice/sluice.yaml"
    c = subprocess.run([str(SLUICED), "-n", "-c", str(conf)], capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    text = conf.read_text()
    assert "0.0.0.0:587" in text and "tls:" not in text
    # One NIC for both roles: one networkd file with DHCP and the dedicated IP.
    net = (tmp_path / "root/etc/systemd/network/10-sluice-mgmt.network").read_text()
    assert "DHCP=yes" in net and "Address=203.0.113.7/24" in net
    assert not (tmp_path / "root/etc/systemd/network/20-sluice-data.network").exists()


def test_setup_dpdk_seed(tmp_path):
    """data_transport=dpdk: the pool on the DPDK port, the NIC for vfio-pci,
    the service drop-in, a static route (what `make image-test` boots)."""
    seed = (SEED.replace("data_ips=198.51.100.10/24, 198.51.100.11/24", "data_ips=203.0.113.10/24")
            .replace("data_gateway=198.51.100.1", "data_gateway=203.0.113.1")
            .replace("ehlo=mta1.example.test,mta2.example.test   # one per IP", "ehlo=mta1.example.test")
            + 'data_transport=dpdk\nvfio_noiommu=yes\nhugepages=128\ndpdk_idle_sleep=1ms\n'
            'dpdk_eal_args="-l 1 --in-memory -a 0000:00:04.0"\nroutes=sink.test=203.0.113.25:2525\n')
    r = run_setup(tmp_path, seed, "--from-seed", str(tmp_path / "seed.conf"))
    assert r.returncode == 0, r.stderr
    root = tmp_path / "root"
    conf = root / "etc/sluice/sluice.yaml"
    c = subprocess.run([str(SLUICED), "-n", "-c", str(conf)], capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    import yaml
    cfg = yaml.safe_load(conf.read_text())
    assert cfg["pools"][0]["transport"] == "dpdk"
    assert cfg["dpdk"] == {"eal_args": ["-l", "1", "--in-memory", "-a", "0000:00:04.0"], "prefix_len": 24,
                           "gateway": "203.0.113.1", "idle_sleep": "1ms"}
    assert cfg["routes"] == [{"domain": "sink.test", "host": "203.0.113.25", "port": 2525}]
    env = (root / "etc/sluice/dataplane.env").read_text()
    assert 'SLUICE_VFIO_NICS="ens4"' in env and "SLUICE_VFIO_NOIOMMU=yes" in env
    assert "SLUICE_NIC_DRIVER=vfio-pci" in env
    (tmp_path / "u").mkdir()
    r = run_setup(tmp_path / "u", seed + "dpdk_driver=uio_pci_generic\n", "--from-seed",
                  str(tmp_path / "u/seed.conf"))
    assert r.returncode == 0, r.stderr
    assert "SLUICE_NIC_DRIVER=uio_pci_generic" in (tmp_path / "u/root/etc/sluice/dataplane.env").read_text()
    assert "SLUICE_HUGEPAGES=128" in env
    # The DPDK NIC gets no networkd file: the kernel must not configure it.
    assert not (root / "etc/systemd/network/20-sluice-data.network").exists()
    dropin = (root / "etc/systemd/system/sluiced.service.d/dpdk.conf").read_text()
    assert "CAP_SYS_RAWIO" in dropin and "PrivateDevices=no" in dropin
    (tmp_path / "b").mkdir()
    bad = run_setup(tmp_path / "b", seed.replace("data_interface=ens4", "data_interface=ens3"),
                    "--from-seed", str(tmp_path / "b/seed.conf"))
    assert bad.returncode == 2 and "management interface" in bad.stderr


def test_firstboot_without_seed_stays_unconfigured(tmp_path):
    r = run_setup(tmp_path, "", "--firstboot")
    assert r.returncode == 0
    assert "stays stopped" in r.stderr
    assert not (tmp_path / "root/etc/sluice/sluice.yaml").exists()


@pytest.mark.parametrize("seed,msg", [
    ("hostname=a.test\n", "missing required"),
    (SEED + "colour=blue\n", "unknown key 'colour'"),
    (SEED.replace("198.51.100.11/24", "198.51.100.10/24"), "listed twice"),
    (SEED.replace("mgmt_address=10.0.0.5/24", "mgmt_address=10.0.0.500/24"), "not an address"),
    (SEED.replace("ehlo=mta1.example.test,mta2.example.test", "ehlo=a.test,b.test,c.test"), "3 names"),
], ids=["missing", "unknown-key", "duplicate-ip", "bad-address", "ehlo-count"])
def test_bad_seed_is_refused_and_writes_nothing(tmp_path, seed, msg):
    r = run_setup(tmp_path, seed, "--from-seed", str(tmp_path / "seed.conf"))
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr
    assert not (tmp_path / "root").exists()


def test_dataplane_prep_binds_a_nic_to_the_configured_driver(tmp_path):
    """Against a fake sysfs: unbind from the kernel driver, driver_override,
    probe; a NIC with an address in use is refused."""
    sys_ = tmp_path / "sys"
    dev = sys_ / "bus/pci/devices/0000:00:04.0"
    (dev / "net/ens4").mkdir(parents=True)
    (sys_ / "bus/pci/drivers/uio_pci_generic").mkdir(parents=True)
    (sys_ / "bus/pci/drivers/virtio-pci").mkdir(parents=True)
    (dev / "driver").symlink_to(sys_ / "bus/pci/drivers/virtio-pci")
    (sys_ / "bus/pci/drivers/virtio-pci/unbind").write_text("")
    (sys_ / "bus/pci/drivers_probe").write_text("")
    (dev / "driver_override").write_text("")
    env = tmp_path / "dataplane.env"
    env.write_text('SLUICE_VFIO_NICS="0000:00:04.0"\nSLUICE_NIC_DRIVER=uio_pci_generic\n')
    r = subprocess.run(["sh", str(PREP), str(env)], capture_output=True, text=True,
                       env=dict(os.environ, SLUICE_SYSFS=str(sys_), SLUICE_PROCFS=str(tmp_path)))
    # The fake "kernel" does not rebind, so the script must notice and fail.
    assert r.returncode == 1
    assert (dev / "driver_override").read_text() == "uio_pci_generic\n"
    assert (sys_ / "bus/pci/drivers/virtio-pci/unbind").read_text() == "0000:00:04.0\n"
    assert "uio_pci_generic did not take it" in r.stderr
    env.write_text('SLUICE_VFIO_NICS="0000:00:04.0"\nSLUICE_NIC_DRIVER=e1000\n')
    r = subprocess.run(["sh", str(PREP), str(env)], capture_output=True, text=True,
                       env=dict(os.environ, SLUICE_SYSFS=str(sys_)))
    assert r.returncode == 1 and "vfio-pci or uio_pci_generic" in r.stderr


def test_dataplane_prep_is_a_no_op_when_nothing_is_configured(tmp_path):
    env = tmp_path / "dataplane.env"
    shutil.copy(ROOT / "image/etc/dataplane.env", env)
    r = subprocess.run(["sh", str(PREP), str(env)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "nothing configured" in r.stdout
    r = subprocess.run(["sh", str(PREP), str(tmp_path / "missing.env")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "--noconftest"]))
