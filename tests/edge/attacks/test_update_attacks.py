"""One named test per update attack (TUF's list), python-tuf's way: a simulated repository
(a real local HTTP server) and a real agent receiving signed commands.

Each attack is refused with an event naming the reason, the device keeps serving the model
it served before, and no file is left behind. The table in docs/security.md points here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge.bundle import KEYRING_FILE, key_id, load_public_key
from tests.edge.attacks.conftest import DEV, Lab, sha
from tests.edge.attacks.repository import flip_byte, repack

# real agents against a real HTTP repository, some with deadlines: the full run (CI) has them
pytestmark = pytest.mark.slow


def kid(pub: Path) -> str:
    return key_id(load_public_key(pub))


def refused_cleanly(lab: Lab, cid: str, reason: str, serving: str, before: set[Path]) -> None:
    """The three promises: refused with the reason, old model serving, nothing left."""
    lab.refused(cid, reason)
    assert lab.serving() == serving
    assert lab.leftovers(before) == set()


# ----------------------------------------------------------------------------- arbitrary software


def test_arbitrary_software_tampered_model_file(lab: Lab) -> None:
    """The model file changed, the signed manifest kept: its sha256 no longer matches
    (the command's sha256 is the tampered file's, as a compromised mirror database would
    have it)."""
    lab.start()
    bad = repack(lab.kit["d2"], lab.tmp / "t.ekb",
                 lambda n, d: flip_byte(d) if n.endswith(".onnx") else d)  # fmt: skip
    before = lab.files()
    cid = lab.deploy(bad, 2)
    refused_cleanly(lab, cid, "sha256 mismatch", "digits-1", before)


def test_arbitrary_software_tampered_manifest(lab: Lab) -> None:
    """The manifest edited (a label renamed) under its old signature."""
    lab.start()

    def edit(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["labels"][0] = "pwned"
        return json.dumps(manifest).encode()

    bad = repack(lab.kit["d2"], lab.tmp / "t.ekb", edit)
    before = lab.files()
    cid = lab.deploy(bad, 2)
    refused_cleanly(lab, cid, "signature does not verify", "digits-1", before)


def test_arbitrary_software_swapped_on_the_mirror(lab: Lab) -> None:
    """The repository serves other bytes than the command's sha256 names."""
    lab.start()
    good = lab.kit["d2"].read_bytes()
    url = lab.repo.add(flip_byte(good, 100), "swapped.ekb")
    before = lab.files()
    cid = lab.deploy(good, 2, url=url)
    refused_cleanly(lab, cid, "sha256 mismatch", "digits-1", before)


# ----------------------------------------------------------------------------- wrong key


def test_wrong_key(lab: Lab) -> None:
    """A well-formed bundle signed by a key the device does not trust."""
    lab.start()
    before = lab.files()
    cid = lab.deploy(lab.kit["d2_c"], 2)
    refused_cleanly(lab, cid, "does not verify with any trusted key", "digits-1", before)


# ----------------------------------------------------------------------------- rollback


def test_rollback_attack_same_model(lab: Lab) -> None:
    lab.start()
    assert lab.outcome(lab.deploy(lab.kit["d2"], 2))["step"] == "committed"
    before = lab.files()
    cid = lab.deploy(lab.kit["d1"], 1)
    refused_cleanly(lab, cid, "not newer than", "digits-2", before)


def test_rollback_attack_across_model_names(lab: Lab) -> None:
    """Deploy digits-2, then model B, then the old digits-1: still a downgrade of digits."""
    lab.start()
    assert lab.outcome(lab.deploy(lab.kit["d2"], 2))["step"] == "committed"
    assert lab.outcome(lab.deploy(lab.kit["other1"], 1, name="other"))["step"] == "committed"
    before = lab.files()
    cid = lab.deploy(lab.kit["d1"], 1)
    refused_cleanly(lab, cid, "downgrade refused", "other-1", before)
    lab.stop()  # the floor survives a restart
    lab.start()
    cid = lab.deploy(lab.kit["d1"], 1)
    refused_cleanly(lab, cid, "downgrade refused", "other-1", before)


def test_rollback_command_only_to_a_committed_version(lab: Lab) -> None:
    """A signed rollback to a version this device never ran is refused; one it committed
    before is carried out."""
    lab.start(bundle=str(lab.kit["d2"]))  # provisioned with digits-2: digits-1 never ran
    d1 = lab.kit["d1"]
    before = lab.files()
    cid = lab.send("rollback", name="digits", version=1, url=lab.repo.add(d1, "d1.ekb"),
                   sha256=sha(d1), size=d1.stat().st_size)  # fmt: skip
    refused_cleanly(lab, cid, "never committed", "digits-2", before)
    assert lab.repo.hits() == []  # refused before anything was downloaded
    assert lab.outcome(lab.deploy(lab.kit["d3"], 3))["step"] == "committed"
    ok = lab.outcome(lab.send("rollback", name="digits", version=2))
    assert ok["step"] == "rolled_back" and lab.serving() == "digits-2"


def test_rollback_command_downloads_only_the_committed_bundle(lab: Lab) -> None:
    """A version committed before but pruned is downloaded again only if it is the very
    bundle committed then (another digits-2, even validly signed, is refused)."""
    lab.start(keep_versions="1")
    for bundle, version in ((lab.kit["d2"], 2), (lab.kit["d3"], 3)):
        assert lab.outcome(lab.deploy(bundle, version))["step"] == "committed"
    assert lab.agent is not None and lab.agent.store.find("digits", 2) is None  # pruned
    evil = lab.kit["d2_evil"]
    before = lab.files()
    cid = lab.send("rollback", name="digits", version=2, url=lab.repo.add(evil, "e.ekb"),
                   sha256=sha(evil), size=evil.stat().st_size)  # fmt: skip
    refused_cleanly(lab, cid, "is not the bundle committed as digits-2", "digits-3", before)
    good = lab.kit["d2"]
    cid = lab.send("rollback", name="digits", version=2, sha256=sha(good),
                   url=lab.repo.add(good, "g.ekb"), size=good.stat().st_size)  # fmt: skip
    ok = lab.outcome(cid)
    assert ok["step"] == "rolled_back" and lab.serving() == "digits-2"
    assert lab.leftovers(before) <= {p for p in lab.files() if "digits-2" in p.parts}


# ----------------------------------------------------------------------------- fast-forward, freeze


def test_fast_forward_attack(lab: Lab) -> None:
    """A validly signed digits-999 sent under a command for version 3 would raise the
    downgrade floor to 999 and freeze the device out of every real update: refused, and
    the real version 3 installs afterwards."""
    lab.start()
    d999 = lab.kit["d999"]
    before = lab.files()
    cid = lab.deploy(d999, 3)
    refused_cleanly(lab, cid, "bundle is version 999, command says 3", "digits-1", before)
    assert lab.agent is not None and lab.agent.store.highest_committed("digits") == 1
    assert lab.outcome(lab.deploy(lab.kit["d3"], 3))["step"] == "committed"


def test_indefinite_freeze_replayed_old_command(lab: Lab) -> None:
    """An old (expired) deploy command replayed later, as a freeze attack would, is refused;
    a fresh command for the same update still works."""
    lab.start()
    before = lab.files()
    now = time.time()
    cid = lab.deploy(lab.kit["d2"], 2, ts=now - 7200, expires=now - 3600)
    refused_cleanly(lab, cid, "expired", "digits-1", before)
    assert lab.repo.hits() == []


# ----------------------------------------------------------------------------- mix-and-match


def test_mix_and_match_other_model_under_this_name(lab: Lab) -> None:
    """A signed bundle of another model delivered for a digits command."""
    lab.start()
    before = lab.files()
    cid = lab.deploy(lab.kit["other1"], 2)
    refused_cleanly(lab, cid, "bundle is 'other', command says 'digits'", "digits-1", before)


def test_mix_and_match_old_bundle_for_a_new_version(lab: Lab) -> None:
    """The signed digits-2 delivered for a digits-3 command."""
    lab.start()
    before = lab.files()
    cid = lab.deploy(lab.kit["d2"], 3)
    refused_cleanly(lab, cid, "bundle is version 2, command says 3", "digits-1", before)


def test_wrong_software_other_device_class(lab: Lab) -> None:
    """A device that runs LiteRT only is sent a bundle with ONNX variants only."""
    lab.start(pin_runtime="litert")
    before = lab.files()
    cid = lab.deploy(lab.kit["d2"], 2)
    event = lab.outcome(cid)
    assert "another device class" in event["detail"]["reason"], event
    assert lab.leftovers(before) == set()


# ----------------------------------------------------------------------------- endless data


def test_endless_data_stops_at_the_declared_size(lab: Lab) -> None:
    lab.start()
    data = lab.kit["d2"].read_bytes()
    url = lab.repo.add(data, "endless.ekb", mode="endless")
    before = lab.files()
    cid = lab.deploy(data, 2, url=url)
    refused_cleanly(lab, cid, f"more than the declared {len(data)} bytes", "digits-1", before)


def test_endless_data_content_length_disagrees(lab: Lab) -> None:
    lab.start()
    data = lab.kit["d2"].read_bytes()
    url = lab.repo.add(data, "long.ekb", mode="length", length=62 * 1024 * 1024)
    before = lab.files()
    cid = lab.deploy(data, 2, url=url)
    refused_cleanly(lab, cid, "disagrees with the declared size", "digits-1", before)


# ----------------------------------------------------------------------------- slow retrieval


def test_slow_retrieval_is_cut_at_the_deadline(lab: Lab) -> None:
    """One byte every 0.5 s: the socket is shut at the 2 s deadline, not after N reads."""
    lab.start(download_timeout="2")
    data = lab.kit["d2"].read_bytes()
    url = lab.repo.add(data, "slow.ekb", mode="trickle", interval=0.5)
    before = lab.files()
    t0 = time.monotonic()
    cid = lab.deploy(data, 2, url=url)
    event = lab.outcome(cid)
    took = time.monotonic() - t0
    assert "did not finish within 2 s" in event["detail"]["reason"], event
    assert 1.9 <= took < 6.0, took
    assert lab.serving() == "digits-1" and lab.leftovers(before) == set()


# ----------------------------------------------------------------------------- malicious mirror


@pytest.mark.parametrize(
    "case", ["other_host", "other_port", "userinfo", "https_downgrade", "redirect"]
)
def test_malicious_mirror(tmp_path: Path, attack_kit: dict[str, Path], case: str) -> None:
    """The device token goes only to the hub's origin: any other URL is refused before a
    connection is made (a redirect is not followed), and the attacker sees no request."""
    lab = Lab(tmp_path, attack_kit)
    try:
        if case == "https_downgrade":  # the hub is https; the command says http
            lab.enrolled_with(f"https://127.0.0.1:{lab.repo.port}")
        lab.start()
        data = attack_kit["d2"].read_bytes()
        evil_url = lab.evil.add(data, "d2.ekb")
        honest = lab.repo.add(data, "d2.ekb")
        url, reason = {
            "other_host": (honest.replace("127.0.0.1", "localhost"), "is not the hub's"),
            "other_port": (evil_url, "is not the hub's"),
            "userinfo": (
                f"http://127.0.0.1:{lab.repo.port}@127.0.0.1:{lab.evil.port}/bundles/d2.ekb",
                "user info",
            ),
            "https_downgrade": (honest, "is not the hub's"),
            "redirect": (
                lab.repo.add(b"", "moved.ekb", mode="redirect", location=evil_url),
                "redirects",
            ),
        }[case]
        before = lab.files()
        cid = lab.deploy(data, 2, url=url)
        refused_cleanly(lab, cid, reason, "digits-1", before)
        assert lab.evil.hits() == []
        if case != "redirect":
            assert lab.repo.hits() == []
    finally:
        lab.close()


# ----------------------------------------------------------------------------- key compromise


def test_key_compromise_rotation_and_revocation(lab: Lab) -> None:
    """Key A (configured) is compromised: a signed keys command adds B and revokes A; a
    bundle signed by A is refused from then on (after a restart too, with A still in the
    config), one signed by B installs. No device is re-provisioned."""
    lab.start()
    pem_b = lab.kit["pub_b"].read_text()
    change = lab.outcome(lab.send("keys", keys={"add": [pem_b], "revoke": [kid(lab.kit["pub_a"])]}))
    assert change["kind"] == "info", change
    assert change["detail"]["trusted"] == [kid(lab.kit["pub_b"])]
    assert change["detail"]["active_trusted"] is False  # digits-1 is signed by A: said so
    before = lab.files()
    cid = lab.deploy(lab.kit["d2"], 2)
    refused_cleanly(lab, cid, f"revoked key {kid(lab.kit['pub_a'])}", "digits-1", before)
    assert lab.outcome(lab.deploy(lab.kit["d2_b"], 2))["step"] == "committed"
    lab.stop()
    lab.start()  # same config, still naming key A
    assert lab.serving() == "digits-2"
    before = lab.files()
    cid = lab.deploy(lab.kit["d3"], 3)
    refused_cleanly(lab, cid, "revoked key", "digits-2", before)
    assert lab.outcome(lab.deploy(lab.kit["d3_b"], 3))["step"] == "committed"
    saved = json.loads((lab.data / KEYRING_FILE).read_text())
    assert list(saved["revoked"]) == [kid(lab.kit["pub_a"])]


def test_key_compromise_several_trusted_keys(lab: Lab) -> None:
    """Several keys are trusted at once (rotation overlap): bundles of either install."""
    lab.start(trusted_keys=str(lab.kit["pub_b"]))
    assert lab.outcome(lab.deploy(lab.kit["d2"], 2))["step"] == "committed"
    assert lab.outcome(lab.deploy(lab.kit["d3_b"], 3))["step"] == "committed"
    assert lab.serving() == "digits-3"


def test_key_compromise_unsigned_keys_command_refused(lab: Lab) -> None:
    """Only a signed keys command changes the keyring (an attacker on the broker cannot
    revoke the real key or add their own)."""
    from tests.commands import OTHER_KEY, command

    lab.start()
    keys = {"add": [lab.kit["pub_c"].read_text()], "revoke": [kid(lab.kit["pub_a"])]}
    for payload in (command("keys", DEV, key=None, keys=keys),
                    command("keys", DEV, key=OTHER_KEY, keys=keys)):  # fmt: skip
        lab.client.publish(f"edgekit/v1/{DEV}/cmd", json.dumps(payload).encode(), qos=1)
        event = lab.outcome(str(payload["id"]))
        assert event["kind"] == "error", event
    assert not (lab.data / KEYRING_FILE).exists()
    assert lab.outcome(lab.deploy(lab.kit["d2"], 2))["step"] == "committed"
