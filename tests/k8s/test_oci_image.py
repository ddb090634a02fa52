"""tests/k8s/oci_image.py: one layer written onto an OCI image archive without a builder
(the vllm image of tests/k8s/image.sh). A small base archive is made here the way `buildah
push oci-archive:` writes one (a gzip layer, index.json naming the ref); what containerd
needs of the result is checked: the blobs named by their digests, the new layer
uncompressed with its digest as diff_id, the config's runtime settings, the files, owners
and modes inside the layer, and the same layer digest from the same files."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).parent / "oci_image.py"
REF = "localhost/subnetlab-test:1"


def _blob(data: bytes) -> tuple[str, bytes]:
    return f"sha256:{hashlib.sha256(data).hexdigest()}", data


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *,
         kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    info.size = len(data) if data is not None else 0
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A one-layer base: /etc/passwd, /etc/group, /usr/bin/python3.11, /lib -> usr/lib."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as layer:
        for directory in ("etc", "usr", "usr/bin", "usr/lib", "tmp"):
            _add(layer, directory, kind=tarfile.DIRTYPE, mode=0o1777 if directory == "tmp"
                 else 0o755)
        _add(layer, "etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n")
        _add(layer, "etc/group", b"root:x:0:\n")
        _add(layer, "usr/bin/python3.11", b"#!/bin/false\n", mode=0o755)
        _add(layer, "lib", kind=tarfile.SYMTYPE, link="usr/lib", mode=0o777)
    diff_id = f"sha256:{hashlib.sha256(raw.getvalue()).hexdigest()}"
    layer_digest, layer_bytes = _blob(gzip.compress(raw.getvalue()))
    config_digest, config = _blob(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C"], "Cmd": ["/bin/bash"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "test"}]}).encode())
    manifest_digest, manifest = _blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": len(layer_bytes)}]}).encode())
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "localhost/base:1"}}]}).encode()
    path = tmp_path / "base.tar"
    with tarfile.open(path, "w") as archive:
        _add(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for digest, data in ((layer_digest, layer_bytes), (config_digest, config),
                             (manifest_digest, manifest)):
            _add(archive, f"blobs/sha256/{digest[7:]}", data)
        _add(archive, "index.json", index)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """What the layer adds: a package tree with a private file, an executable, a link."""
    root = tmp_path / "tree"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "sub" / "secret.bin").write_bytes(b"\0" * 3000)
    (root / "pkg" / "sub" / "secret.bin").chmod(0o600)
    (root / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    (root / "pkg" / "run.sh").chmod(0o700)
    (root / "pkg" / "alias.py").symlink_to("mod.py")
    (root / "pkg" / "sub-link").symlink_to("sub")
    return root


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=60, check=False)


def build(base: Path, tree: Path, out: Path, *extra: str) -> str:
    done = run("--base", str(base), "--ref", REF, "--out", str(out),
               "--add", f"{tree / 'pkg'}=/opt/app/lib",
               "--link", "/opt/app/python3=/usr/bin/python3.11",
               "--passwd", "app:10001:10001:/tmp", "--env", "PATH=/opt/app:/usr/bin:/bin",
               "--env", "HOME=/tmp", "--entrypoint", '["/opt/app/python3", "-m", "app"]',
               "--user", "10001:10001", "--workdir", "/tmp", "--label", "a.b=c",
               "--require", "/usr/bin/python3.11", *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Archive:
    """An OCI archive's members, read whole (they are small here)."""

    def __init__(self, path: Path) -> None:
        with tarfile.open(path) as tar:
            self.names = tar.getnames()
            self.files = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                          for m in tar.getmembers() if m.isfile()}

    def read(self, name: str) -> bytes:
        return self.files[name]

    def blob(self, digest: str) -> bytes:
        data = self.read(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        assert hashlib.sha256(data).hexdigest() == digest.removeprefix("sha256:")
        return data

    def json(self, digest: str) -> Any:
        return json.loads(self.blob(digest))


def test_the_layer_goes_on_top_of_the_base(base: Path, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    printed = build(base, tree, out)
    archive, original = Archive(out), Archive(base)
    index = json.loads(archive.read("index.json"))
    [entry] = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == REF
    assert entry["digest"] == printed
    manifest = archive.json(entry["digest"])
    base_manifest = original.json(json.loads(original.read("index.json"))["manifests"][0]
                                  ["digest"])
    assert manifest["layers"][0] == base_manifest["layers"][0]  # copied as it was
    archive.blob(manifest["layers"][0]["digest"])
    new = manifest["layers"][1]
    assert new["mediaType"] == "application/vnd.oci.image.layer.v1.tar"  # uncompressed
    layer = archive.blob(new["digest"])
    assert len(layer) == new["size"]
    config = archive.json(manifest["config"]["digest"])
    assert config["rootfs"]["diff_ids"][1] == new["digest"]
    runtime = config["config"]
    assert runtime["Env"] == ["PATH=/opt/app:/usr/bin:/bin", "LANG=C", "HOME=/tmp"]
    assert runtime["Entrypoint"] == ["/opt/app/python3", "-m", "app"]
    assert "Cmd" not in runtime  # an entrypoint given without a cmd: the base's goes
    assert (runtime["User"], runtime["WorkingDir"]) == ("10001:10001", "/tmp")
    assert runtime["Labels"] == {"a.b": "c"}
    assert len(config["history"]) == 2
    assert archive.names[0] == "oci-layout" and archive.names[-1] == "index.json"


def test_the_layers_files_owners_and_modes(base: Path, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    build(base, tree, out)
    archive = Archive(out)
    manifest = archive.json(json.loads(archive.read("index.json"))["manifests"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(archive.blob(manifest["layers"][1]["digest"]))) as t:
        entries = {m.name: m for m in t.getmembers()}
        passwd = t.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
        group = t.extractfile("etc/group").read().decode()  # type: ignore[union-attr]
    assert passwd.splitlines() == ["root:x:0:0:root:/root:/bin/bash",
                                   "app:x:10001:10001::/tmp:/usr/sbin/nologin"]
    assert group.splitlines() == ["root:x:0:", "app:x:10001:"]
    # the base's directories are not declared again (its /lib link stays a link)
    assert not {"etc", "usr", "usr/bin", "lib", "tmp"} & set(entries)
    assert {"opt", "opt/app", "opt/app/lib", "opt/app/lib/sub"} <= set(entries)
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "root" for m in entries.values())
    modes = {name: m.mode for name, m in entries.items()}
    assert modes["opt/app/lib/mod.py"] == 0o644
    assert modes["opt/app/lib/sub/secret.bin"] == 0o644  # readable by uid 10001
    assert modes["opt/app/lib/run.sh"] == 0o755
    assert modes["opt/app/lib/sub"] == 0o755
    assert entries["opt/app/lib/sub/secret.bin"].size == 3000
    assert entries["opt/app/lib/alias.py"].issym()
    assert entries["opt/app/lib/alias.py"].linkname == "mod.py"
    assert entries["opt/app/lib/sub-link"].issym()  # a link to a directory is not followed
    assert entries["opt/app/python3"].linkname == "/usr/bin/python3.11"
    assert entries["opt/app/lib/mod.py"].mtime == int(
        os.stat(tree / "pkg" / "mod.py").st_mtime)  # a .pyc checks its source's time


def test_the_same_files_give_the_same_layer(base: Path, tree: Path, tmp_path: Path) -> None:
    def layer_digest(out: Path) -> str:
        archive = Archive(out)
        manifest = archive.json(json.loads(archive.read("index.json"))["manifests"][0]
                                ["digest"])
        return str(manifest["layers"][1]["digest"])

    build(base, tree, tmp_path / "one.tar")
    build(base, tree, tmp_path / "two.tar", "--env", "EXTRA=1")
    assert layer_digest(tmp_path / "one.tar") == layer_digest(tmp_path / "two.tar")
    (tree / "pkg" / "mod.py").write_text("x = 2\n")
    build(base, tree, tmp_path / "three.tar")
    assert layer_digest(tmp_path / "three.tar") != layer_digest(tmp_path / "one.tar")


@pytest.mark.parametrize(("extra", "says"), [
    (("--require", "/usr/bin/python3.12"), "the base image"),
    (("--add", "/nonexistent/x=/x"), "no such file or directory: /nonexistent/x"),
    (("--add", "relative"), "expected SRC=/DEST"),
    (("--link", "/a"), "expected /DEST=TARGET"),
    (("--passwd", "app:x:1:/tmp"), "expected NAME:UID:GID:HOME"),
])
def test_bad_arguments_are_refused(base: Path, tmp_path: Path, extra: tuple[str, ...],
                                   says: str) -> None:
    out = tmp_path / "out.tar"
    done = run("--base", str(base), "--ref", REF, "--out", str(out), *extra)
    assert done.returncode == 1
    assert done.stderr.startswith("oci_image.py: error: ") and says in done.stderr, done.stderr
    assert not out.exists() and not list(tmp_path.glob("out.tar*"))
