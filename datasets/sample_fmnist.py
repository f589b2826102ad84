#!/usr/bin/env python3
"""sample_fmnist.py -- the real trained sample: a small CNN on Fashion-MNIST.

Trains a 4-conv CNN on the CPU on Debian's dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist/*.gz, idx files read with gzip + numpy)
with two classes held out of training, and exports, for three checkpoints
(initialisation, after epoch 1, after the last epoch), a repbench feature dump
and a weight dump with datasets/export_torch.py:

    OUT/fmnist_e0.h5  OUT/fmnist_e1.h5  OUT/fmnist_e3.h5          feature dumps
    OUT/fmnist_ckpt_e0.safetensors  ..._e1  ..._e3                weight dumps
    OUT/fmnist.json                                               what was done, timings,
                                                                  accuracies (written last)

Held out: classes 8 (Bag) and 9 (Ankle boot).  The network is trained on the
other 8 classes, whose labels 0..7 are kept as they are; the held-out classes'
test images (2000) are the unlabelled split `ood_heldout`.
Training set: all 48,000 training images of the 8 classes (--n-per-class
6000; a smaller seeded class-balanced subset with a smaller value).  Dump
splits: `train` (a seeded 5000 of the training images, which keeps `make
sweep` on the three dumps to minutes), `test` (all 8000 test images of the 8
classes), `ood_heldout`.  Feature dumps: model "fmnist_cnn", root attribute
step = optimizer steps so far (repbench names the rows fmnist_cnn@<step>);
weight dumps: model "fmnist_cnn_e<epoch>", metadata step.
Layers, in depth order: conv1..conv4 (conv -> BN -> ReLU, stride 2; globally
averaged by the exporter: 16, 32, 64, 128 channels), penult (the 128-d
penultimate layer, ReLU output) and the model's own logits (/logits/<split>).

Reproducible: torch.manual_seed, deterministic algorithms, a fixed number of
torch threads (default 1: the same reductions on every machine, and no
OpenMP spinning on a shared CPU).  Inputs are scaled to [0, 1] and
standardised with the training set's mean and std (0.2860, 0.3530).

    python3 datasets/sample_fmnist.py [-o datasets/sample] [--epochs 3] [--seed 0]
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np


def die(msg):
    """One line naming the file and the problem on stderr, exit status 2."""
    print("sample_fmnist.py: " + msg, file=sys.stderr)
    sys.exit(2)


try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    die("needs PyTorch (Debian: apt-get install python3-torch)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import ExportError, export_features, export_weights  # noqa: E402

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
HELD_OUT = (8, 9)               # Bag, Ankle boot: the ood_heldout split
MEAN, STD = 0.2860, 0.3530      # Fashion-MNIST training pixels in [0, 1]


def read_idx(path, images):
    """An idx file (gzip) as a uint8 array: [N, 28, 28] images or [N] labels."""
    try:
        with gzip.open(path, "rb") as g:
            b = g.read()
    except FileNotFoundError as e:
        die("%s: %s (Debian: apt-get install dataset-fashion-mnist)" % (path, e.strerror))
    except (OSError, EOFError) as e:
        die("%s: not a readable gzip file: %s" % (path, e))
    magic = int.from_bytes(b[0:4], "big")
    if magic != (2051 if images else 2049):
        die("%s: bad idx magic number %d" % (path, magic))
    n = int.from_bytes(b[4:8], "big")
    if images:
        r, c = int.from_bytes(b[8:12], "big"), int.from_bytes(b[12:16], "big")
        a = np.frombuffer(b, np.uint8, offset=16)
        if a.size != n * r * c:
            die("%s: %d bytes of pixels for %d images of %dx%d" % (path, a.size, n, r, c))
        return a.reshape(n, r, c)
    a = np.frombuffer(b, np.uint8, offset=8)
    if a.size != n:
        die("%s: %d labels, header says %d" % (path, a.size, n))
    return a


def load(data_dir, prefix):
    x = read_idx(os.path.join(data_dir, prefix + "-images-idx3-ubyte.gz"), True)
    y = read_idx(os.path.join(data_dir, prefix + "-labels-idx1-ubyte.gz"), False)
    if len(x) != len(y):
        die("%s/%s: %d images but %d labels" % (data_dir, prefix, len(x), len(y)))
    return x, torch.from_numpy(y.astype(np.int64))


def pixels(x, idx):
    """Images idx of the uint8 array x as a standardised float32 [n, 1, 28, 28] tensor."""
    x = x[np.asarray(idx)].astype(np.float32)
    return torch.from_numpy((x / 255.0 - MEAN) / STD).unsqueeze(1)


class Net(nn.Module):
    """conv1..conv4: 3x3 conv (stride 2) -> BN -> ReLU, 28 -> 14 -> 7 -> 4 -> 2;
    penult: flatten -> linear 512 -> 128 -> ReLU; fc: linear 128 -> classes."""

    def __init__(self, classes, width=(16, 32, 64, 128), hidden=128):
        super().__init__()
        c_in = 1
        for i, c in enumerate(width, 1):
            setattr(self, "conv%d" % i, nn.Sequential(
                nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c), nn.ReLU()))
            c_in = c
        self.n_conv = len(width)
        self.penult = nn.Sequential(nn.Flatten(), nn.Linear(c_in * 2 * 2, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        for i in range(1, self.n_conv + 1):
            x = getattr(self, "conv%d" % i)(x)
        return self.fc(self.penult(x))


@torch.no_grad()
def accuracy(model, x, y, bs=1000):
    was = model.training
    model.eval()
    correct = sum(int((model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum())
                  for i in range(0, len(x), bs))
    model.train(was)
    return correct / len(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="datasets/sample", help="output directory")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="directory of the four Fashion-MNIST idx .gz files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-per-class", type=int, default=6000,
                    help="training images per trained class (max 6000)")
    ap.add_argument("--n-dump-train", type=int, default=5000,
                    help="training images in the dump's train split")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (fixed: results "
                    "do not depend on the machine's core count)")
    a = ap.parse_args(argv)

    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)

    xtr_all, ytr_all = load(a.data, "train")
    xte_all, yte_all = load(a.data, "t10k")
    kept = [c for c in range(10) if c not in HELD_OUT]
    assert kept == list(range(len(kept))), "held-out classes must be the last ones"
    n_cls = len(kept)

    # seeded class-balanced training subset of the kept classes
    idx = []
    for c in kept:
        ic = torch.nonzero(ytr_all == c).flatten()
        idx.append(ic[torch.randperm(len(ic), generator=gen)[:a.n_per_class]])
    idx = torch.cat(idx).sort().values
    xtr, ytr = pixels(xtr_all, idx), ytr_all[idx]
    dump_tr = torch.randperm(len(xtr), generator=gen)[:a.n_dump_train].sort().values
    keep_te = (yte_all < n_cls)
    xte, yte = pixels(xte_all, keep_te.numpy()), yte_all[keep_te]
    xood = pixels(xte_all, (~keep_te).numpy())
    t_data = time.time() - t_start

    model = Net(n_cls)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    steps_per_epoch = (len(xtr) + a.batch_size - 1) // a.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, epochs=a.epochs,
                                                steps_per_epoch=steps_per_epoch)
    layers = ["conv%d" % i for i in range(1, model.n_conv + 1)] + ["penult"]
    splits = {"train": (xtr[dump_tr], ytr[dump_tr]), "test": (xte, yte), "ood_heldout": (xood,)}
    save_at = sorted({0, 1, a.epochs})
    info = {"script": "datasets/sample_fmnist.py", "seed": a.seed, "threads": a.threads,
            "torch": torch.__version__, "held_out": [CLASSES[c] for c in HELD_OUT],
            "classes": CLASSES[:n_cls], "n_train": len(xtr), "n_dump_train": len(dump_tr),
            "n_test": len(xte), "n_ood_heldout": len(xood), "epochs": a.epochs,
            "batch_size": a.batch_size, "lr_max": a.lr, "optimizer": "Adam + one-cycle",
            "params": sum(p.numel() for p in model.parameters()), "layers": layers,
            "checkpoints": []}

    t_train = t_export = 0.0

    def checkpoint(epoch, loss):
        nonlocal t_export
        t0 = time.time()
        tag = "e%d" % epoch
        name = "fmnist_cnn"   # feature and weight rows: fmnist_cnn@<step>
        feat = os.path.join(a.out, "fmnist_%s.h5" % tag)
        wts = os.path.join(a.out, "fmnist_ckpt_%s.safetensors" % tag)
        step = epoch * steps_per_epoch
        export_features(model, splits, feat, layers, batch_size=1000, logits=True,
                        classes=CLASSES[:n_cls], model_name="fmnist_cnn", dataset_name="fashion_mnist",
                        step=step)
        s = export_weights(model, wts, model_name=name, step=step)
        t_export += time.time() - t0
        c = {"epoch": epoch, "step": step, "features": feat, "weights": wts,
             "train_loss": loss, "dump_train_acc": accuracy(model, xtr[dump_tr], ytr[dump_tr]),
             "test_acc": accuracy(model, xte, yte),
             "skipped_tensors": sorted(s["skipped"])}
        info["checkpoints"].append(c)
        print("fmnist: epoch %d (step %d): loss %s, dump train acc %.4f, test acc %.4f -> %s, %s" %
              (epoch, step, "-" if loss is None else "%.4f" % loss, c["dump_train_acc"],
               c["test_acc"], feat, wts), flush=True)

    checkpoint(0, None)
    model.train()
    for epoch in range(1, a.epochs + 1):
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)
        tot, n = 0.0, 0
        for i in range(0, len(xtr), a.batch_size):
            b = perm[i:i + a.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss) * len(b)
            n += len(b)
        t_train += time.time() - t0
        if epoch in save_at:
            checkpoint(epoch, tot / n)
    info["seconds"] = {"data": round(t_data, 2), "train": round(t_train, 2),
                       "export_and_eval": round(t_export, 2),
                       "total": round(time.time() - t_start, 2)}
    tmp = os.path.join(a.out, "fmnist.json.tmp")
    with open(tmp, "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(a.out, "fmnist.json"))
    print("fmnist: %d train images (%s held out), %d epochs, %.1f s (train %.1f, export %.1f)" %
          (len(xtr), " and ".join(info["held_out"]), a.epochs, info["seconds"]["total"],
           t_train, t_export))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ExportError as e:
        die(str(e))
