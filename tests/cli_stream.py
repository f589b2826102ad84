#!/usr/bin/env python3
"""cli_stream.py -- helpers of tests/cli_stream.sh.

  gzip SRC DST ROWS COLS   copy an HDF5 dump with every /features/<split>/<layer>
                           rewritten gzip-compressed (shuffle), chunks of
                           ROWS x COLS; everything else copied as is.
  rss BOUND_MB RB ARGS...  run `RB ARGS...` once per method named in the
                           env METHODS (comma list; ARGS gets --methods M),
                           print peak RSS (os.wait4 ru_maxrss of the child),
                           (collapse with --head none: its default head is a
                           logreg fitted in memory), wall time and rows/s,
                           MB/s (rows and bytes of
                           the dump's feature cells for that layer); exit 1
                           when a run fails or exceeds BOUND_MB.
  same A B                 CSV files A and B equal but for a seconds
                           column (byte-identical after dropping it).
"""
import csv, os, subprocess, sys, time


def gzip_copy(src, dst, rows, cols):
    import h5py
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v

        def copy(name, o):
            if isinstance(o, h5py.Group):
                gg = g.require_group(name)
                for k, v in o.attrs.items():
                    gg.attrs[k] = v
                return
            if name.startswith("features/") and o.ndim == 2:
                ch = (min(rows, o.shape[0]), min(cols, o.shape[1]))
                d = g.create_dataset(name, data=o[()], chunks=ch, compression="gzip",
                                     compression_opts=4, shuffle=True)
            else:
                d = g.create_dataset(name, data=o[()])
            for k, v in o.attrs.items():
                d.attrs[k] = v
        f.visititems(copy)


def dump_size(path):
    import h5py
    rows = nbytes = 0
    with h5py.File(path, "r") as f:
        for sp in f["features"]:
            for ly in f["features"][sp]:
                d = f["features"][sp][ly]
                rows += d.shape[0]
                nbytes += d.size * d.dtype.itemsize
    return rows, nbytes


def rss(bound_mb, rb, args):
    dump = [a for a in args if a.endswith(".h5")][0]
    rows, nbytes = dump_size(dump)
    bad = 0
    for m in os.environ["METHODS"].split(","):
        t0 = time.time()
        # collapse's default NC3/NC4 head is a logreg fitted on the train
        # rows in memory; --head none measures its streamed statistics.
        extra = ["--head", "none"] if m == "collapse" else []
        p = subprocess.Popen([rb] + args + ["--methods", m] + extra, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        err = p.stderr.read().decode(errors="replace")
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - t0
        mb = ru.ru_maxrss / 1024.0
        ok = p.returncode == 0 and "failed" not in err and mb < bound_mb
        print("%s %-10s peak RSS %7.1f MB (bound %d MB)  %6.2f s  %9.0f rows/s  %7.1f MB/s  exit %d" %
              ("ok  " if ok else "FAIL", m, mb, bound_mb, wall, rows / wall, nbytes / 1048576.0 / wall,
               p.returncode))
        if not ok:
            bad = 1
            if err.strip():
                print("     " + err.strip().splitlines()[-1])
    return bad


def same(a, b):
    def rows(p):
        with open(p, newline="") as fh:
            r = list(csv.reader(fh))
        if "seconds" not in r[0]:
            return r
        i = r[0].index("seconds")
        return [x[:i] + x[i + 1:] for x in r]
    ra, rb = rows(a), rows(b)
    if ra != rb:
        for x, y in zip(ra, rb):
            if x != y:
                print("differ:\n  %s\n  %s" % (",".join(x), ",".join(y)))
                break
        else:
            print("differ: %d rows vs %d" % (len(ra), len(rb)))
        return 1
    print("same: %d rows" % (len(ra) - 1))
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gzip":
        gzip_copy(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "rss":
        sys.exit(rss(int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
    elif cmd == "same":
        sys.exit(same(sys.argv[2], sys.argv[3]))
    else:
        sys.exit("usage: cli_stream.py gzip|rss|same ...")
