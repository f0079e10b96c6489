#!/usr/bin/env python3
"""Write a two-platform OCI image layout from two rootfs tarballs (issue 18's fixtures).

    oci-multiarch.py AMD64.tar ARM64.tar OUTDIR TAG

OUTDIR gets an OCI image layout (oci-layout, index.json, blobs/sha256/) whose index.json holds
ONE image index (application/vnd.oci.image.index.v1+json), annotated
org.opencontainers.image.ref.name=TAG, with two image manifests: platform linux/amd64 and
linux/arm64. Each image is one gzip layer (the tarball as is, gzip mtime 0) and a config like
Docker Hub's busybox (Env PATH, Cmd ["sh"], rootfs.diff_ids, two history entries). Everything is
deterministic: the same tarballs give the same digests. Push it with
    skopeo copy --all oci:OUTDIR:TAG docker://HOST/REPO:TAG
Stdlib only.
"""
import gzip
import hashlib
import json
import os
import shutil
import sys

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CREATED = "1970-01-01T00:00:00Z"


def blob(out, data, media_type):
    """Store data under blobs/sha256 and return its descriptor."""
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def image(out, tarball, arch):
    with open(tarball, "rb") as f:
        tar = f.read()
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    layer = blob(out, gzip.compress(tar, compresslevel=9, mtime=0), LAYER)
    config = {
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": CREATED, "created_by": "/bin/sh -c #(nop) ADD file:%s in / " % diff_id[7:]},
            {"created": CREATED, "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
        ],
    }
    cfg = blob(out, canonical(config), CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": cfg, "layers": [layer]}
    desc = blob(out, canonical(manifest), MANIFEST)
    desc["platform"] = {"architecture": arch, "os": "linux"}
    return desc


def main(argv):
    if len(argv) != 5:
        sys.exit("usage: oci-multiarch.py AMD64.tar ARM64.tar OUTDIR TAG")
    amd64, arm64, out, tag = argv[1:]
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    manifests = [image(out, amd64, "amd64"), image(out, arm64, "arm64")]
    index = blob(out, canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}), INDEX)
    index["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [index]}, f, indent=2)
    print(index["digest"])


if __name__ == "__main__":
    main(sys.argv)
