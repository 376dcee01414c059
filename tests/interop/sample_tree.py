"""The tree of small files the lafs-vs-Tahoe comparisons copy (test and bench alike).

    python3 tests/interop/sample_tree.py ROOT [FILES [DIRS]]
"""

import os
import random
import sys


def make_tree(root, files=1000, dirs=50):
    """`files` files of 0 B to 32 KiB (LIT and one-segment CHK) spread over `dirs` directories."""
    rng = random.Random(22)
    for i in range(files):
        d = os.path.join(root, "d%02d" % (i % dirs))
        os.makedirs(d, exist_ok=True)
        size = rng.choice([0, 10, 55, 56, 1000]) if i % 10 == 0 else rng.randint(56, 32768)
        with open(os.path.join(d, "f%05d" % i), "wb") as f:
            f.write(rng.randbytes(size))


if __name__ == "__main__":
    make_tree(sys.argv[1], *(int(a) for a in sys.argv[2:4]))
