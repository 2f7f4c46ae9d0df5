"""Small helpers shared by test modules."""

import os


def file_tree(path):
    """{relative path: (size, mtime_ns)} of every file under `path` ({} if missing)."""
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            stat = os.stat(full)
            files[os.path.relpath(full, path)] = (stat.st_size, stat.st_mtime_ns)
    return files
