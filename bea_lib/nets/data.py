"""Data sets for full-batch training, as tensors held in memory (Section 6 of the paper).

Each loader returns a :class:`Dataset`: inputs channels-first, ``(N, C, L)`` for signals and
``(N, C, H, W)`` for images, standardised with statistics of the training set; labels int64.
Nothing is downloaded at run time:

- ``"mnist1d"``: MNIST-1D (Greydanus, 2020), generated offline by the ``mnist1d`` package with
  its canonical arguments: 4,000 training and 1,000 test signals of length 40, 10 classes.
  Generating it takes seconds (about 6 s here), so the arrays are kept in a cache folder
  (``$BEA_CACHE_DIR``, else ``~/.cache/bea_lib``) as ``.npz``, named by the package version and
  a hash of the arguments and written atomically; a missing, unreadable or unwritable cache
  only means generating again. (The package's own ``get_dataset`` caches a pickle whose name
  does not depend on the arguments and writes it in place.)
- ``"digits"``: scikit-learn's bundled 8×8 digits (1,797 images), split 1,437 / 360 by a fixed
  permutation.
- ``"cifar10"``, ``"cifar100"``: read by ``torchvision.datasets`` from the python-pickle batches
  in a local directory (``download=False``). torchvision checks each batch file's md5, so a
  truncated or altered download fails here, before training, with the path and the remedy.
  No augmentation: the paper's loss E is a fixed function of θ.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..base.fileio import atomic_write
from ..core.validation import check_int, check_one_of

DATASETS = ("mnist1d", "digits", "cifar10", "cifar100")

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


class DataError(RuntimeError):
    """A local data set that is there but cannot be used (a file missing or failing its md5)."""


@dataclass(frozen=True)
class Dataset:
    """A training and a test set in memory; ``x_*`` float, ``y_*`` int64 class labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. (1, 40) for MNIST-1D or (3, 32, 32) for CIFAR."""
        return tuple(self.x_train.shape[1:])

    def to(self, device=None, dtype=None) -> Dataset:
        """The same data on ``device``, inputs in ``dtype`` (labels stay int64)."""
        return Dataset(self.name, self.x_train.to(device, dtype), self.y_train.to(device),
                       self.x_test.to(device, dtype), self.y_test.to(device), self.n_classes)


def _standardised(name, x_train, y_train, x_test, y_test, n_classes, axes) -> Dataset:
    """Subtract the training mean and divide by the training standard deviation over ``axes``.

    In float32 throughout (torch sums in a cascade, so the statistics keep float32 accuracy
    even over CIFAR's 150 million values), so that CIFAR needs no float64 copy.
    """
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    x_test = torch.as_tensor(x_test, dtype=torch.float32)
    std, mean = torch.std_mean(x_train, dim=axes, keepdim=True)
    return Dataset(name, (x_train - mean) / std, torch.as_tensor(y_train, dtype=torch.int64),
                   (x_test - mean) / std, torch.as_tensor(y_test, dtype=torch.int64), n_classes)


def cache_dir() -> Path:
    """Where generated data sets are kept: ``$BEA_CACHE_DIR``, else ``~/.cache/bea_lib``."""
    return Path(os.environ.get("BEA_CACHE_DIR") or Path.home() / ".cache" / "bea_lib")


def _mnist1d_arrays() -> dict[str, np.ndarray]:
    """x, y, x_test, y_test of MNIST-1D with the canonical arguments, from the cache when there."""
    from importlib.metadata import version

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    key = hashlib.sha256(repr(sorted(vars(args).items())).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d-{version('mnist1d')}-{key}.npz"
    names = ("x", "y", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {n: f[n] for n in names}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        pass  # not cached yet, or damaged: generate
    d = make_dataset(args)  # already centred and scaled by the package
    arrays = {n: np.asarray(d[n]) for n in names}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: _savez(tmp, arrays))
    except OSError:
        pass  # a read-only home: the data set is generated each time
    return arrays


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, **arrays)


@functools.lru_cache(maxsize=1)
def mnist1d() -> Dataset:
    """MNIST-1D with the canonical arguments of ``mnist1d.data.get_dataset_args`` (seed 42)."""
    d = _mnist1d_arrays()
    return _standardised("mnist1d", d["x"][:, None, :], d["y"], d["x_test"][:, None, :],
                         d["y_test"], 10, axes=(0, 1, 2))


@functools.lru_cache(maxsize=1)
def digits() -> Dataset:
    """scikit-learn's 8×8 digits, 1,437 training / 360 test images (a fixed permutation, seed 0)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm].reshape(-1, 1, 8, 8), y[perm]
    n_train = 1437  # 80 %
    return _standardised("digits", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 10,
                         axes=(0, 1, 2, 3))


# name -> (input shape, classes, training and test examples): what a cost estimate needs
# without reading the data
SHAPES = {"mnist1d": ((1, 40), 10, 4000, 1000), "digits": ((1, 8, 8), 10, 1437, 360),
          "cifar10": ((3, 32, 32), 10, 50000, 10000), "cifar100": ((3, 32, 32), 100, 50000, 10000)}


def _cifar_class(n_classes: int):
    from torchvision.datasets import CIFAR10, CIFAR100

    return CIFAR10 if check_one_of("n_classes", n_classes, (10, 100)) == 10 else CIFAR100


def _cifar_missing(root: str | Path, n_classes: int) -> str:
    """The one-line message naming the folder where CIFAR is expected and how to get it."""
    cls = _cifar_class(n_classes)
    folder = Path(root) / cls.base_folder
    return (f"CIFAR-{n_classes} not found: no folder {folder}. Download {Path(cls.url).name} "
            f"from {_CIFAR_URL} and extract it in {Path(root)} (it creates {folder}), or, on a "
            f"machine with network access, run once: python -c \"import torchvision; "
            f"torchvision.datasets.{cls.__name__}('{root}', download=True)\".")


def check_local_data(name: str, root: str | Path) -> None:
    """Raise ``FileNotFoundError`` (one line: the folder and the remedy) when the data set
    ``name`` is read from ``root`` and its folder is not there; nothing for generated sets."""
    name = check_one_of("dataset", name, DATASETS)
    if name.startswith("cifar"):
        n_classes = 10 if name == "cifar10" else 100
        if not (Path(root) / _cifar_class(n_classes).base_folder).is_dir():
            raise FileNotFoundError(_cifar_missing(root, n_classes))


STANDIN_FILE = "STANDIN.json"  # a generated stand-in's own checksums (:func:`write_cifar_standin`)


def cifar(root: str | Path, n_classes: int = 10) -> Dataset:
    """CIFAR-10 or CIFAR-100 from ``root``, holding ``cifar-10-batches-py`` or ``cifar-100-python``.

    Raises ``FileNotFoundError`` if the folder is missing and :class:`DataError` if a file in it
    is missing or fails torchvision's md5 check; both name the path and say how to get the data.
    A folder written by :func:`write_cifar_standin` is checked against the checksums it carries
    (:data:`STANDIN_FILE`) instead; real data never carry that file.
    """
    from torchvision.datasets.utils import check_integrity

    cls = _cifar_class(n_classes)
    n_classes = 10 if cls.__name__ == "CIFAR10" else 100
    folder = Path(root) / cls.base_folder
    missing = _cifar_missing(root, n_classes)
    how = missing[missing.index("Download"):]
    if not folder.is_dir():
        raise FileNotFoundError(missing)
    files = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
    standin = folder / STANDIN_FILE
    if standin.is_file():  # a generated stand-in: its own checksums, never torchvision's
        files = list(json.loads(standin.read_text())["md5"].items())
    bad = [name for name, md5 in files if not check_integrity(str(folder / name), md5)]
    if bad:
        raise DataError(f"CIFAR-{n_classes} in {folder} is damaged: {', '.join(bad)} missing "
                           f"or failing the md5 check. {how}")
    label = "labels" if n_classes == 10 else "fine_labels"
    parts = []
    for names in (cls.train_list, cls.test_list):  # the python pickles, as torchvision reads them
        xs, ys = [], []
        for name, _ in names:
            with open(folder / name, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(entry["data"]).reshape(-1, 3, 32, 32))
            ys += list(entry[label])
        parts += [np.concatenate(xs).astype(np.float32) / 255, ys]
    return _standardised(f"cifar{n_classes}", *parts, n_classes, axes=(0, 2, 3))  # per channel


def write_cifar_standin(root: str | Path, n_classes: int = 10, *, n_per_file: int = 50,
                        seed: int = 0) -> Path:
    """Write a CIFAR-shaped stand-in under ``root``: the folder, file names and pickle layout of
    CIFAR-10 (five training batches and a test batch) or CIFAR-100 (train, test), each file
    ``n_per_file`` random 32×32 colour images with random labels, the meta file, and
    :data:`STANDIN_FILE` holding their md5 checksums. For dry runs of the CIFAR workflow
    without the data; returns the folder."""
    from torchvision.datasets.utils import calculate_md5

    cls = _cifar_class(n_classes)
    folder = Path(root) / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    label = "labels" if n_classes == 10 else "fine_labels"
    names = [name for name, _ in cls.train_list + cls.test_list]
    for name in names:
        entry = {"data": rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8),
                 label: rng.integers(0, n_classes, n_per_file).tolist()}
        atomic_write(folder / name, lambda tmp, e=entry: tmp.write_bytes(pickle.dumps(e)))
    meta = {("label_names" if n_classes == 10 else "fine_label_names"):
            [f"class {i}" for i in range(n_classes)]}
    names.append(cls.meta["filename"])
    atomic_write(folder / names[-1], lambda tmp: tmp.write_bytes(pickle.dumps(meta)))
    md5 = {name: calculate_md5(str(folder / name)) for name in names}
    atomic_write(folder / STANDIN_FILE,
                 lambda tmp: tmp.write_text(json.dumps({"generated": True, "md5": md5})))
    return folder


def load_dataset(name: str, *, root: str | Path = "data", n_train: int | None = None,
                 n_test: int | None = None) -> Dataset:
    """The data set ``name`` (one of :data:`DATASETS`), optionally cut to its first n examples.

    ``root`` is read only for CIFAR. ``n_train``/``n_test`` shrink runs for tests and benchmarks;
    more examples than the data set holds is a ``ValueError`` naming its size.
    """
    name = check_one_of("dataset", name, DATASETS)
    n_train = check_int("n_train", n_train, minimum=1, optional=True)
    n_test = check_int("n_test", n_test, minimum=1, optional=True)
    if name == "mnist1d":
        data = mnist1d()
    elif name == "digits":
        data = digits()
    else:
        data = cifar(root, 10 if name == "cifar10" else 100)
    for option, n, have in (("n_train", n_train, len(data.x_train)),
                            ("n_test", n_test, len(data.x_test))):
        if n is not None and n > have:
            raise ValueError(f"{option} is {n}, but {name} has {have} "
                             f"{option[2:]}{'ing' if option == 'n_train' else ''} examples; ask "
                             f"for at most {have} (or None: all of them)")
    return Dataset(data.name, data.x_train[:n_train], data.y_train[:n_train], data.x_test[:n_test],
                   data.y_test[:n_test], data.n_classes)


def check_data(data, *, dataset: str, n_train: int | None, n_test: int | None) -> None:
    """``data`` given to a run must be the run's data set: a :class:`Dataset` named
    ``dataset`` with ``n_train`` training and ``n_test`` test examples (when they are set).
    A ``ValueError`` naming what differs otherwise (a ``TypeError`` for another object)."""
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a Dataset (bea_lib.nets.data.load_dataset), got "
                         f"{type(data).__name__}")
    if data.name != dataset:
        raise ValueError(f"data is the {data.name} data set, but the config trains on "
                         f"{dataset}; pass its data, or set dataset={data.name!r}")
    for option, n, have in (("n_train", n_train, len(data.x_train)),
                            ("n_test", n_test, len(data.x_test))):
        if n is not None and n != have:
            raise ValueError(f"data holds {have} {option[2:]} examples, but the config asks for "
                             f"{option}={n}; load it with {option}={n}, or set {option}={have}")
