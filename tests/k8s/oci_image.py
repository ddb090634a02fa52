"""One more layer on an OCI image archive, written directly: no builder, no storage driver.

Why (tests/k8s/image.sh's `vllm` image): the vLLM CPU environment is 6 GB of files that
already exist on the host. buildah on vfs would copy them into its storage, diff the tree,
compress the layer and write the archive: several full passes over 6 GB. Here the layer is
one uncompressed tar streamed from the host's files straight into the archive, hashed as it
is written, so each byte is read once and written once.

    python3 oci_image.py --base BASE.tar --ref REF --out OUT.tar
        [--add SRC=DEST]... [--link DEST=TARGET]... [--passwd NAME:UID:GID:HOME]
        [--env NAME=VALUE]... [--entrypoint JSON] [--cmd JSON] [--user U:G]
        [--workdir DIR] [--label NAME=VALUE]... [--require PATH]...

- `--base`: an OCI archive of one image (as `buildah push oci-archive:` writes it); its
  blobs are copied as they are, the new layer goes on top.
- `--add SRC=DEST`: a file or a directory tree (recursively; symbolic links kept as links)
  at DEST (`/`: a directory's contents at the root), owned by root, readable by everyone
  (directories and executables searchable). A directory the base already has is not
  declared again (its owner and mode stay the base's; a base's /lib may be a link).
- `--link DEST=TARGET`: a symbolic link.
- `--passwd NAME:UID:GID:HOME`: the base's /etc/passwd and /etc/group with that user and
  group appended (a system account, no login shell).
- `--require PATH`: fail unless the base's layers hold PATH (e.g. the Python the layer's
  files need), before anything is written.
- the config: the base's, with `--env` (replacing a variable of the same name), the
  entrypoint, cmd (default: none when an entrypoint is given), user, working directory and
  labels.

The layer is reproducible: its entries in a fixed order, owned by root, with the files' own
times, so the same files give the same layer digest, and a containerd that has it already
(an earlier build with another config) skips storing and unpacking it again. The archive is
written beside OUT and renamed onto it when complete. Prints the manifest's digest.
Standard library only (the host's python3 runs it).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
COPY_BUFFER = 4 * 1024 * 1024


class OciError(RuntimeError):
    """The base archive or an argument cannot be used; the message says which and why."""


class HashingWriter:
    """A write-only file that hashes and counts what goes through it to `out`."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size


# --- reading the base ---------------------------------------------------------------------


class Base:
    """The base archive: its members by name, its index, manifest and config."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar = tarfile.open(path)  # noqa: SIM115 (closed by close(): `with Base(...)`)
        self.members = {m.name.removeprefix("./"): m for m in self.tar.getmembers()}
        index = self.json("index.json")
        manifests = index.get("manifests") or []
        if len(manifests) != 1:
            raise OciError(f"{path}: index.json must name one image, it names {len(manifests)}")
        self.manifest = self.blob_json(manifests[0]["digest"])
        self.config = self.blob_json(self.manifest["config"]["digest"])

    def close(self) -> None:
        self.tar.close()

    def __enter__(self) -> Base:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, name: str) -> bytes:
        member = self.members.get(name)
        handle = self.tar.extractfile(member) if member else None
        if handle is None:
            raise OciError(f"{self.path}: no {name}")
        return handle.read()

    def json(self, name: str) -> Any:
        return json.loads(self.read(name))

    def blob_name(self, digest: str) -> str:
        algorithm, _, value = digest.partition(":")
        return f"blobs/{algorithm}/{value}"

    def blob_json(self, digest: str) -> Any:
        return json.loads(self.read(self.blob_name(digest)))

    def layer_files(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        """Every entry of every layer, bottom layer first (whiteouts not applied)."""
        for layer in self.manifest["layers"]:
            member = self.members.get(self.blob_name(layer["digest"]))
            raw = self.tar.extractfile(member) if member else None
            if raw is None:
                raise OciError(f"{self.path}: no blob {layer['digest']}")
            stream: IO[bytes] | gzip.GzipFile = raw
            if "gzip" in layer["mediaType"]:
                stream = gzip.GzipFile(fileobj=raw)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for info in tar:
                    yield tar, info

    def scan(self, wanted: set[str]) -> tuple[set[str], dict[str, bytes]]:
        """Which paths of the layers exist, and the contents of the regular files in
        `wanted` (normalized, no leading slash): the last layer's version."""
        found: set[str] = set()
        contents: dict[str, bytes] = {}
        for tar, info in self.layer_files():
            name = info.name.removeprefix("./").rstrip("/")
            found.add(name)
            if name in wanted and info.isfile():
                handle = tar.extractfile(info)
                contents[name] = handle.read() if handle else b""
        return found, contents


# --- the layer ----------------------------------------------------------------------------


def _root_info(name: str, st: os.stat_result | None = None) -> tarfile.TarInfo:
    """An entry owned by root, with the file's own time (a `.pyc` records its source's) or,
    for what has no file, SOURCE_DATE_EPOCH (default 0): the same inputs, the same layer."""
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = int(st.st_mtime) if st else int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    return info


def _readable(mode: int, is_dir: bool) -> int:
    """Everyone may read it, only its owner (root) write it; directories and executables
    may be searched or run by everyone. No set-id bits."""
    mode = stat.S_IMODE(mode) & 0o755 | 0o444
    if is_dir or mode & 0o111:
        mode |= 0o111
    return mode


class Layer:
    """The entries of the new layer, written in order into a tar stream."""

    def __init__(self, tar: tarfile.TarFile, base_paths: set[str]) -> None:
        self.tar = tar
        self.dirs = set(base_paths)  # never re-declared (a base's /lib may be a link)

    def parents(self, name: str) -> None:
        """The directories above `name` that the base lacks (root-owned, 0755), once each."""
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if path not in self.dirs:
                self.dirs.add(path)
                info = _root_info(path)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                self.tar.addfile(info)

    def add_path(self, src: Path, dest: str) -> None:
        """`src` (a file, link or tree) at `dest`; `dest` "" (the root): a tree's contents."""
        if dest:
            self.parents(dest)
            self._entry(src, dest)
        if not src.is_dir() or src.is_symlink():
            return
        for root, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(root, src)
            prefix = "/".join(p for p in (dest, "" if rel == "." else rel) if p)
            prefix = f"{prefix}/" if prefix else ""
            for name in [*sorted(filenames), *dirnames]:  # os.walk enters only real dirs
                self._entry(Path(root, name), f"{prefix}{name}")

    def _entry(self, path: Path, name: str) -> None:
        st = path.lstat()
        info = _root_info(name, st)
        if stat.S_ISLNK(st.st_mode):
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
            self.tar.addfile(info)
        elif stat.S_ISDIR(st.st_mode):
            if name in self.dirs:  # the base's directory (or one declared already) stays
                return
            self.dirs.add(name)
            info.type, info.mode = tarfile.DIRTYPE, _readable(st.st_mode, True)
            self.tar.addfile(info)
        elif stat.S_ISREG(st.st_mode):
            info.size, info.mode = st.st_size, _readable(st.st_mode, False)
            with path.open("rb") as handle:
                self.tar.addfile(info, handle)
        else:
            raise OciError(f"{path}: not a file, directory or symbolic link")

    def add_link(self, dest: str, target: str) -> None:
        self.parents(dest)
        info = _root_info(dest)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self.tar.addfile(info)

    def add_bytes(self, dest: str, data: bytes, mode: int = 0o644) -> None:
        self.parents(dest)
        info = _root_info(dest)
        info.size, info.mode = len(data), mode
        self.tar.addfile(info, io.BytesIO(data))


def with_account(passwd: bytes, group: bytes, spec: str) -> tuple[bytes, bytes]:
    """/etc/passwd and /etc/group with the account NAME:UID:GID:HOME appended (unless a
    line for that name is already there)."""
    try:
        name, uid, gid, home = spec.split(":")
    except ValueError:
        raise OciError(f"--passwd: expected NAME:UID:GID:HOME, got {spec!r}") from None
    if not (name and uid.isdigit() and gid.isdigit() and home.startswith("/")):
        raise OciError(f"--passwd: expected NAME:UID:GID:HOME, got {spec!r}")

    def append(text: bytes, line: str) -> bytes:
        rows = text.decode().splitlines()
        if any(row.split(":", 1)[0] == name for row in rows):
            return text
        return ("\n".join([*rows, line]) + "\n").encode()

    return (append(passwd, f"{name}:x:{uid}:{gid}::{home}:/usr/sbin/nologin"),
            append(group, f"{name}:x:{gid}:"))


# --- the archive ----------------------------------------------------------------------------


def _header(name: str, size: int) -> bytes:
    info = _root_info(name)
    info.size, info.mode = size, 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _pad(out: IO[bytes], size: int) -> None:
    out.write(b"\0" * (-size % tarfile.BLOCKSIZE))


def _member(out: IO[bytes], name: str, data: bytes) -> None:
    out.write(_header(name, len(data)))
    out.write(data)
    _pad(out, len(data))


def _blob(data: bytes) -> tuple[str, bytes]:
    return f"sha256:{hashlib.sha256(data).hexdigest()}", data


def _config_for(base: dict[str, Any], args: argparse.Namespace, diff_id: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(json.dumps(base))  # a deep copy
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    runtime = config.setdefault("config", {})
    env = list(runtime.get("Env") or [])
    for item in args.env:  # a variable the base sets keeps its place, with the new value
        names = [e.split("=", 1)[0] for e in env]
        name = item.split("=", 1)[0]
        if name in names:
            env[names.index(name)] = item
        else:
            env.append(item)
    runtime["Env"] = env
    if args.entrypoint is not None:
        runtime["Entrypoint"] = json.loads(args.entrypoint)
        runtime.pop("Cmd", None)
    if args.cmd is not None:
        runtime["Cmd"] = json.loads(args.cmd)
    if args.user:
        runtime["User"] = args.user
    if args.workdir:
        runtime["WorkingDir"] = args.workdir
    labels = dict(runtime.get("Labels") or {})
    labels.update(item.split("=", 1) for item in args.label)
    runtime["Labels"] = labels
    config["created"] = now
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
    config.setdefault("history", []).append(
        {"created": now, "created_by": "tests/k8s/oci_image.py", "comment": args.comment})
    return config


def build(args: argparse.Namespace) -> str:
    with Base(Path(args.base)) as base:
        return _build(base, args)


def _build(base: Base, args: argparse.Namespace) -> str:
    adds: list[tuple[Path, str]] = []
    for item in args.add:
        src, sep, dest = item.partition("=")
        if not sep or not dest.startswith("/"):
            raise OciError(f"--add: expected SRC=/DEST, got {item!r}")
        if dest == "/" and not os.path.isdir(src):
            raise OciError(f"--add: only a directory's contents go at /, got {item!r}")
        if not os.path.lexists(src):
            raise OciError(f"--add: no such file or directory: {src}")
        adds.append((Path(src), dest.strip("/")))
    links = []
    for item in args.link:
        dest, sep, target = item.partition("=")
        if not sep or not dest.startswith("/") or not target:
            raise OciError(f"--link: expected /DEST=TARGET, got {item!r}")
        links.append((dest.strip("/"), target))
    wanted = {"etc/passwd", "etc/group"} if args.passwd else set()
    found, contents = base.scan(wanted)
    for path in args.require:
        if path.strip("/") not in found:
            raise OciError(f"the base image {args.base} has no {path}")

    out_path = Path(args.out)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        digest = _write(base, args, tmp, found, contents, adds, links)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out_path)
    return digest


def _write(base: Base, args: argparse.Namespace, tmp: Path, found: set[str],
           contents: dict[str, bytes], adds: list[tuple[Path, str]],
           links: list[tuple[str, str]]) -> str:
    """The archive at `tmp`; its manifest's digest."""
    with tmp.open("wb") as out:
        _member(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for layer in base.manifest["layers"]:  # the base's blobs, as they are
            name = base.blob_name(layer["digest"])
            handle = base.tar.extractfile(base.members[name])
            assert handle is not None
            out.write(_header(name, layer["size"]))
            copied = 0
            while chunk := handle.read(COPY_BUFFER):
                out.write(chunk)
                copied += len(chunk)
            if copied != layer["size"]:
                raise OciError(f"{args.base}: blob {layer['digest']} is {copied} bytes, its "
                               f"manifest says {layer['size']}")
            _pad(out, copied)
        # The layer: a header whose name (the digest) and size are known only at the end,
        # so its place is kept and it is written last.
        header_at = out.tell()
        out.write(b"\0" * tarfile.BLOCKSIZE)
        hashing = HashingWriter(out)
        with tarfile.TarFile(fileobj=hashing, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[arg-type]
                             copybufsize=COPY_BUFFER) as tar:
            layer_ = Layer(tar, found)
            if args.passwd:
                passwd, group = with_account(contents.get("etc/passwd", b""),
                                             contents.get("etc/group", b""), args.passwd)
                layer_.add_bytes("etc/passwd", passwd)
                layer_.add_bytes("etc/group", group)
            for src, dest in adds:
                layer_.add_path(src, dest)
            for dest, target in links:
                layer_.add_link(dest, target)
        layer_size, diff_id = hashing.size, f"sha256:{hashing.sha.hexdigest()}"
        _pad(out, layer_size)
        end = out.tell()
        out.seek(header_at)
        out.write(_header(f"blobs/sha256/{diff_id.removeprefix('sha256:')}", layer_size))
        out.seek(end)

        config_digest, config = _blob(json.dumps(
            _config_for(base.config, args, diff_id), separators=(",", ":")).encode())
        manifest = {
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [*base.manifest["layers"],
                       {"mediaType": LAYER, "digest": diff_id, "size": layer_size}],
        }
        manifest_digest, manifest_bytes = _blob(json.dumps(manifest, separators=(",", ":"))
                                                .encode())
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes),
            "annotations": {REF_ANNOTATION: args.ref}}]}
        _member(out, base.blob_name(config_digest), config)
        _member(out, base.blob_name(manifest_digest), manifest_bytes)
        _member(out, "index.json", json.dumps(index, separators=(",", ":")).encode())
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))  # the end of the archive
    return manifest_digest


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--ref", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--add", action="append", default=[])
    parser.add_argument("--link", action="append", default=[])
    parser.add_argument("--passwd")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--entrypoint")
    parser.add_argument("--cmd")
    parser.add_argument("--user")
    parser.add_argument("--workdir")
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--require", action="append", default=[])
    parser.add_argument("--comment", default="")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    try:
        print(build(parse(argv)))
    except (OciError, OSError, tarfile.TarError, ValueError, KeyError) as exc:
        print(f"oci_image.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
