#!/usr/bin/env python3
"""Writes a deterministic newc cpio archive of a directory tree to stdout.

    mkcpio.py [--mtime SECONDS] [--node PATH:c|b:MAJOR:MINOR:MODE]... ROOT_DIR

Entries are sorted, owned by 0:0, numbered sequentially and stamped with one fixed mtime, so the
same tree always gives the same bytes. --node adds a device node (e.g. dev/console, which the
kernel opens before /init runs) without needing mknod privileges on the build host.
"""

import os
import stat
import sys


def header(ino, mode, nlink, mtime, size, rdev_major, rdev_minor, name):
    fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev_major, rdev_minor, len(name) + 1, 0]
    return ("070701" + "".join(f"{v:08x}" for v in fields)).encode()


def pad(n):
    return b"\0" * ((4 - n % 4) % 4)


def main():
    args = sys.argv[1:]
    mtime, nodes = 0, []
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--mtime":
            mtime = int(args.pop(0))
        elif opt == "--node":
            path, kind, major, minor, mode = args.pop(0).split(":")
            nodes.append((path, kind, int(major), int(minor), int(mode, 8)))
        else:
            sys.exit(f"mkcpio.py: unknown option {opt}")
    if len(args) != 1:
        sys.exit("usage: mkcpio.py [--mtime S] [--node PATH:c|b:MAJ:MIN:MODE]... ROOT_DIR")
    root = args[0]

    entries = []  # (name, mode, data, major, minor)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entries.append((rel, stat.S_IFLNK | 0o777, os.readlink(full).encode(), 0, 0))
            elif stat.S_ISDIR(st.st_mode):
                entries.append((rel, stat.S_IFDIR | perm, b"", 0, 0))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    entries.append((rel, stat.S_IFREG | perm, f.read(), 0, 0))
            else:
                sys.exit(f"mkcpio.py: unsupported file type: {full}")
    for path, kind, major, minor, mode in nodes:
        fmt = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        entries.append((path, fmt | mode, b"", major, minor))
    entries.sort(key=lambda e: e[0])

    out = sys.stdout.buffer
    for ino, (name, mode, data, major, minor) in enumerate(entries, start=1):
        nlink = 2 if stat.S_ISDIR(mode) else 1
        hdr = header(ino, mode, nlink, mtime, len(data), major, minor, name)
        out.write(hdr + name.encode() + b"\0" + pad(len(hdr) + len(name) + 1))
        out.write(data + pad(len(data)))
    trailer = header(0, 0, 1, 0, 0, 0, 0, "TRAILER!!!")
    out.write(trailer + b"TRAILER!!!\0" + pad(len(trailer) + 11))


if __name__ == "__main__":
    main()
