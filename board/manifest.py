"""A deploy bundle's manifest: its files' hashes and sizes, paths kept inside the bundle, and its signature.

Read on the board by run.py and on the host by `edgewise bundle verify` and `edgewise bench`: the
standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class BundleError(ValueError):
    """A bundle whose manifest is damaged, incomplete or points outside the bundle, or whose signature does not
    match."""


SIGNATURE = "signature"  # manifest field: HMAC-SHA256 of the rest of the manifest, with the user's key
MIN_KEY_BYTES = 16
_FIELDS = {"format": str, "name": str, "model": str, "inputs": list, "probe": dict, "files": dict}


def inside(root: Path, name: object) -> Path:
    """root/name, refused (BundleError) unless it is a relative path that stays inside the bundle, symbolic links
    resolved: a manifest cannot make the runner read a file elsewhere on the board."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise BundleError(f"the manifest names {name!r}, which is not a path inside the bundle")
    path = root / name
    base = root.resolve()
    if path.resolve() != base and base not in path.resolve().parents:
        raise BundleError(f"{name} leads outside the bundle (a symbolic link to {path.resolve()})")
    return path


def read_manifest(root: Path) -> dict:
    """The bundle's manifest.json, checked: JSON, every field of its format present with its type, every file it
    names inside the bundle and listed with its sha256 and size (the model and probe included)."""
    path = inside(root, "manifest.json")
    if not path.is_file():
        raise BundleError(f"{root} has no manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"manifest.json is not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError("manifest.json does not hold an object")
    for field, kind in _FIELDS.items():
        if not isinstance(manifest.get(field), kind):
            raise BundleError(f"manifest.json has no {field} ({kind.__name__})")
    probe = manifest["probe"]
    if not all(isinstance(probe.get(k), str) for k in ("input", "output")) or \
            not isinstance(probe.get("rtol"), int | float):
        raise BundleError("manifest.json's probe needs input, output and rtol")
    for name, entry in manifest["files"].items():
        inside(root, name)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or \
                not isinstance(entry.get("bytes"), int):
            raise BundleError(f"manifest.json lists {name} without its sha256 and size")
    for name in (manifest["model"], probe["input"], probe["output"]):
        inside(root, name)
        if name not in manifest["files"]:
            raise BundleError(f"manifest.json names {name} but does not list its hash")
    if manifest.get("trtexec") is not None and not (
            isinstance(manifest["trtexec"], list) and all(isinstance(p, str) for p in manifest["trtexec"])):
        raise BundleError("manifest.json's trtexec is not a command line (a list of strings)")
    return manifest


def check_files(root: Path, manifest: dict) -> list[str]:
    """Names of bundle files whose sha256 or size differs from the manifest, or that are missing."""
    bad = []
    for name, entry in manifest["files"].items():
        path = inside(root, name)
        if not path.is_file() or path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
            bad.append(name)
    return bad


def read_key(path: str | os.PathLike[str]) -> bytes:
    """A signing key from its file (its bytes, surrounding whitespace removed; at least 16)."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise BundleError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise BundleError(f"the key in {path} has {len(key)} bytes; a signing key has at least {MIN_KEY_BYTES}")
    return key


def signature(manifest: dict, key: bytes) -> str:
    """HMAC-SHA256 (hex) of the manifest without its signature, keys sorted: what a bundle is signed with."""
    import hmac

    body = json.dumps({k: v for k, v in manifest.items() if k != SIGNATURE}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def check_signature(manifest: dict, key: bytes | None) -> str:
    """'verified' when the manifest's signature matches `key`, 'unsigned' or 'not checked (no key)' where there is
    nothing to check; a BundleError when the signature does not match, or a key is given for an unsigned bundle (a
    signed one rewritten without its signature)."""
    import hmac

    signed = manifest.get(SIGNATURE)
    if key is None:
        return "not checked (no key given)" if signed else "unsigned"
    if not isinstance(signed, str):
        raise BundleError("the bundle is not signed, and a key was given to check it with")
    if not hmac.compare_digest(signed, signature(manifest, key)):
        raise BundleError("the manifest's signature does not match the key: the bundle was changed after signing")
    return "verified"
