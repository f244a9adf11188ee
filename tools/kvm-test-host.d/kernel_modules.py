#!/usr/bin/env python3
"""Unpacks the test host's kernel and modules from a Debian linux-image .deb, without installing it.

    kernel_modules.py KERNEL_DEB_PY DEB KVER OUT_DIR ROOT_MODULE...

Reuses the demo image's extractor (images/demo/kernel_deb.py: vmlinux from the bzImage, modules
with their depends=/softdep closure, load.order) so both share one way of reading the package. The
demo guest needs only virtio/fs/net modules, so its extractor keeps only those directories; the
test host also needs KVM (arch/x86/kvm, virt/lib), the AMD CCP driver kvm-amd depends on, and 9p
(net/9p), so those directories are added to what it keeps.
"""

import importlib.util
import sys

EXTRA_KEEP_DIRS = ("/arch/x86/kvm/", "/virt/lib/", "/drivers/crypto/", "/net/9p/")


def main():
    if len(sys.argv) < 6:
        sys.exit("usage: kernel_modules.py KERNEL_DEB_PY DEB KVER OUT_DIR ROOT_MODULE...")
    spec = importlib.util.spec_from_file_location("kernel_deb", sys.argv[1])
    kernel_deb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernel_deb)
    if not isinstance(getattr(kernel_deb, "KEEP_DIRS", None), tuple) or not hasattr(kernel_deb, "main"):
        sys.exit(f"kernel_modules.py: {sys.argv[1]} no longer has KEEP_DIRS/main(); update this wrapper")
    kernel_deb.KEEP_DIRS = kernel_deb.KEEP_DIRS + EXTRA_KEEP_DIRS
    sys.argv = [sys.argv[1]] + sys.argv[2:]
    kernel_deb.main()


if __name__ == "__main__":
    main()
