#!/usr/bin/env python3
"""B4: write a scenario of N seeded random add/online/offline/remove steps on a 1 TiB
machine (default 100,000 steps, seed 4), to standard output:

    python3 bench/gen-b4.py > bench/b4-random.toml
    target/release/host --config bench/b4-random.toml --format json > /dev/null

Steps land on whole 128 MiB blocks in [4 GiB, 1 TiB); many fail (an online of a range
that was never added, a remove of online memory), so each has `expect = "any"`.
"""
import random
import sys

BLOCK = 128 << 20
BASE = 4 << 30
SLOTS = ((1 << 40) - BASE) // BLOCK


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 4)
    out = sys.stdout
    out.write("# B4: %d seeded random steps on a 1 TiB machine (bench/gen-b4.py).\n" % steps)
    out.write('[machine]\nmax_phys_bits = 40\nplugin_dirs = ["../target/release"]\n')
    out.write('[[machine.node]]\nid = 0\nboot = [{ start = "0", size = "4GiB" }]\n')
    for _ in range(steps):
        op = rng.choice(["add", "add", "online", "offline", "remove"])
        blocks = rng.randint(1, 8)
        slot = rng.randrange(SLOTS - blocks)
        start = BASE + slot * BLOCK
        out.write('[[step]]\nop = "%s"\nstart = "%#x"\nsize = "%dMiB"\nexpect = "any"\n' % (op, start, blocks * 128))


if __name__ == "__main__":
    main()
