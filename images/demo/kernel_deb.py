#!/usr/bin/env python3
"""Unpacks what the demo image needs from a Debian linux-image .deb, without installing it.

    kernel_deb.py DEB KVER OUT_DIR ROOT_MODULE...

Writes into OUT_DIR (which must not exist yet; the caller renames it into the cache):
  vmlinuz      the bzImage as shipped
  vmlinux      the uncompressed ELF kernel inside it (QEMU boots it through PVH, which skips the
               in-guest decompression: seconds under software emulation)
  config       the kernel's build configuration
  modules/     ROOT_MODULE... plus everything they need (depends= and softdep pre:), decompressed
  load.order   the module names in an order insmod accepts (dependencies first)

A .deb carries no modules.dep (depmod runs at install time), so the dependency graph comes from
each module's .modinfo section. The package is read as a stream in one pass; only the modules
that end up needed are kept in memory at the end, everything else is reduced to its modinfo.
"""

import io
import lzma
import os
import struct
import subprocess
import sys
import tarfile


def die(msg):
    sys.exit(f"kernel_deb.py: {msg}")


def decompress_module(path, data):
    if path.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.endswith(".ko.zst"):
        out = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, check=True)
        return out.stdout
    if path.endswith(".ko.gz"):
        import gzip

        return gzip.decompress(data)
    return data


def modinfo(elf):
    """Returns the key=value pairs of an ELF64 module's .modinfo section (keys may repeat)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError("not an ELF64 module")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i):
        base = shoff + i * shentsize
        name, = struct.unpack_from("<I", elf, base)
        off, size = struct.unpack_from("<QQ", elf, base + 0x18)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        end = elf.index(b"\0", stroff + name)
        if elf[stroff + name:end] == b".modinfo":
            pairs = []
            for item in elf[off:off + size].split(b"\0"):
                if b"=" in item:
                    k, v = item.decode(errors="replace").split("=", 1)
                    pairs.append((k, v))
            return pairs
    return []


def extract_vmlinux(bzimage):
    """Finds the compressed payload in a bzImage and returns it decompressed (an ELF)."""
    candidates = [
        (b"\xfd7zXZ\x00", lambda d: lzma.LZMADecompressor().decompress(d)),  # Debian 6.1: xz
        (b"\x28\xb5\x2f\xfd",  # Debian 6.12: zstd
         lambda d: subprocess.run(["zstd", "-dcq"], input=d, capture_output=True).stdout),
    ]
    for magic, decompress in candidates:
        start = bzimage.find(magic)
        while start >= 0:
            try:
                out = decompress(bzimage[start:])
            except lzma.LZMAError:
                out = b""
            if out[:4] == b"\x7fELF":
                return out
            start = bzimage.find(magic, start + 1)
    die("no ELF vmlinux found inside the bzImage")


def main():
    if len(sys.argv) < 5:
        die("usage: kernel_deb.py DEB KVER OUT_DIR ROOT_MODULE...")
    deb, kver, out_dir, roots = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    mod_prefix = f"./lib/modules/{kver}/"

    info = {}  # module name -> (depends list, softdep pre list)
    aliases = {}  # alias -> [module names]
    blobs = {}  # module name -> decompressed bytes (all, pruned after resolution)
    vmlinuz = config = None

    tar_stream = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=tar_stream.stdout, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name
            if name == f"./boot/vmlinuz-{kver}":
                vmlinuz = tar.extractfile(member).read()
            elif name == f"./boot/config-{kver}":
                config = tar.extractfile(member).read()
            elif name.startswith(mod_prefix) and ".ko" in os.path.basename(name):
                data = decompress_module(name, tar.extractfile(member).read())
                mod = os.path.basename(name).split(".ko")[0]
                pairs = modinfo(data)
                deps, pre = [], []
                for k, v in pairs:
                    if k == "depends" and v:
                        deps += v.split(",")
                    elif k == "softdep":
                        # "pre: a b post: c": only pre-dependencies must be loaded first.
                        section = None
                        for word in v.split():
                            if word.endswith(":"):
                                section = word[:-1]
                            elif section == "pre":
                                pre.append(word)
                    elif k == "alias":
                        aliases.setdefault(v, []).append(mod)
                info[mod] = (deps, pre)
                # Keeping every module would cost ~400 MB of memory; the roots' closure is tiny
                # but not known until the whole archive has been read. Keep only the candidates
                # whose directory a virtio/ext4/ACPI guest can plausibly need.
                blobs[mod] = data if keep_candidate(name) else None
    if tar_stream.wait() != 0:
        die(f"dpkg-deb --fsys-tarfile {deb} failed")
    if vmlinuz is None or config is None:
        die(f"{deb} has no /boot/vmlinuz-{kver} or /boot/config-{kver}")

    def resolve_name(name):
        if name in info:
            return name
        alt = name.replace("-", "_")
        for mod in info:
            if mod.replace("-", "_") == alt:
                return mod
        providers = aliases.get(name, [])
        if not providers:
            return None
        # Prefer the portable C implementation (e.g. crc32c_generic over crc32c-intel, which
        # needs SSE4.2 that a minimal emulated CPU may lack).
        providers.sort(key=lambda m: (0 if "generic" in m else 1, m))
        return providers[0]

    order, visiting = [], set()

    def visit(name, required):
        mod = resolve_name(name)
        if mod is None:
            if required:
                die(f"module {name} not found in {deb} (built in? check config)")
            return
        if mod in order:
            return
        if mod in visiting:
            die(f"module dependency cycle at {mod}")
        visiting.add(mod)
        deps, pre = info[mod]
        for p in pre:
            visit(p, required=False)
        for d in deps:
            visit(d, required=True)
        visiting.discard(mod)
        order.append(mod)

    for root in roots:
        visit(root, required=True)

    os.makedirs(os.path.join(out_dir, "modules"))
    for mod in order:
        data = blobs.get(mod)
        if data is None:
            die(f"module {mod} is needed but outside the kept directories; extend keep_candidate()")
        with open(os.path.join(out_dir, "modules", mod + ".ko"), "wb") as f:
            f.write(data)
    with open(os.path.join(out_dir, "load.order"), "w") as f:
        f.write("".join(m + "\n" for m in order))
    with open(os.path.join(out_dir, "vmlinuz"), "wb") as f:
        f.write(vmlinuz)
    with open(os.path.join(out_dir, "config"), "wb") as f:
        f.write(config)
    with open(os.path.join(out_dir, "vmlinux"), "wb") as f:
        f.write(extract_vmlinux(vmlinuz))
    print(" ".join(order))


KEEP_DIRS = ("/drivers/virtio/", "/drivers/net/", "/drivers/block/", "/drivers/acpi/",
             "/drivers/input/", "/drivers/char/", "/fs/", "/lib/", "/crypto/", "/arch/x86/crypto/",
             "/net/core/")


def keep_candidate(path):
    path = path.split("/kernel", 1)[-1]
    # drivers/net/ holds hundreds of NIC drivers: keep only its top level (virtio_net, failover).
    if path.startswith("/drivers/net/") and path.count("/") > 3:
        return False
    return any(path.startswith(d) for d in KEEP_DIRS) and path.count("/") <= 4


if __name__ == "__main__":
    main()
