"""Data loaders: shapes and standardisation of the embedded sets, and the CIFAR reader on small
files written here in the CIFAR python-pickle format."""
import hashlib
import pickle

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from bea_lib.nets import data as data_module
from bea_lib.nets.data import load_dataset


def test_mnist1d_is_the_canonical_split():
    d = load_dataset("mnist1d")
    assert d.x_train.shape == (4000, 1, 40) and d.x_test.shape == (1000, 1, 40)
    assert d.y_train.dtype == torch.int64 and set(d.y_train.tolist()) == set(range(10))
    assert d.n_classes == 10
    # standardised with the training set's own statistics: mean 0, std 1 up to float32 rounding
    assert abs(d.x_train.mean().item()) < 1e-5 and abs(d.x_train.std().item() - 1) < 1e-5


def test_mnist1d_is_generated_once_then_read_from_the_cache(tmp_path, monkeypatch):
    import mnist1d.data

    calls = []

    def fake_make_dataset(args):  # stands in for the 6-second generation
        calls.append(args)
        rng = np.random.default_rng(len(calls))
        return {"x": rng.normal(size=(8, 40)), "y": rng.integers(0, 10, 8),
                "x_test": rng.normal(size=(4, 40)), "y_test": rng.integers(0, 10, 4), "t": None}

    monkeypatch.setattr(mnist1d.data, "make_dataset", fake_make_dataset)
    monkeypatch.setenv("BEA_CACHE_DIR", str(tmp_path / "cache"))
    first = data_module._mnist1d_arrays()
    cached, = (tmp_path / "cache").glob("mnist1d-*.npz")
    again = data_module._mnist1d_arrays()
    assert len(calls) == 1  # the second call read the file
    for name in first:
        np.testing.assert_array_equal(again[name], first[name])
    cached.write_bytes(cached.read_bytes()[:100])  # damaged: generated again, and rewritten
    data_module._mnist1d_arrays()
    assert len(calls) == 2 and len(data_module._mnist1d_arrays()["y"]) == 8 and len(calls) == 2
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("BEA_CACHE_DIR", str(blocker / "cache"))
    assert len(data_module._mnist1d_arrays()["x"]) == 8  # unwritable cache: generated, not cached
    assert len(calls) == 3


def test_digits_split_and_cut():
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.input_shape == (1, 8, 8)
    small = load_dataset("digits", n_train=10, n_test=3)
    assert len(small.x_train) == 10 and len(small.y_test) == 3
    assert torch.equal(small.x_train, d.x_train[:10])


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="dataset must be one of .*'mnist'"):
        load_dataset("mnist")


def _write_batches(folder, files, label_key, n_per_file, n_classes, rng):
    """CIFAR pickles: uint8 rows of 3072 = 3 channels × 32 × 32, channel-major, and a label list."""
    folder.mkdir(parents=True)
    images, labels = {}, {}
    for name in files:
        data = rng.integers(0, 256, size=(n_per_file, 3072), dtype=np.uint8)
        y = rng.integers(0, n_classes, size=n_per_file).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, label_key: y}, f)
        images[name], labels[name] = data, y
    return images, labels


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """Six tiny batches and the meta file; torchvision's md5 table is pointed at their checksums,
    so that loading goes through the same integrity check as the real data."""
    folder = tmp_path / CIFAR10.base_folder
    names = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list]
    images, labels = _write_batches(folder, names, "labels", 4, 10, np.random.default_rng(0))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    monkeypatch.setattr(CIFAR10, "train_list",
                        [[n, _md5(folder / n)] for n, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[n, _md5(folder / n)] for n, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(folder / "batches.meta")})
    return tmp_path, images, labels


def test_cifar10_reads_the_pickles(fake_cifar10):
    root, images, labels = fake_cifar10
    d = load_dataset("cifar10", root=root)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32,
                                                                     32) and d.n_classes == 10
    assert d.y_train.tolist() == sum((labels[f"data_batch_{i}"] for i in range(1, 6)), [])
    # undo the per-channel standardisation: the pixels come back in (C, H, W) order
    raw = np.concatenate([images[f"data_batch_{i}"] for i in range(1, 6)])
    raw = raw.reshape(-1, 3, 32, 32) / 255.0
    raw = torch.as_tensor(raw)
    mean, std = raw.mean(dim=(0, 2, 3), keepdim=True), raw.std(dim=(0, 2, 3), keepdim=True)
    # float32 storage of standardised values of order 1: rounding 6e-8, with margin
    assert torch.allclose(d.x_train.double(), (raw - mean) / std, atol=1e-6)


def test_cifar100_reads_fine_labels(tmp_path, monkeypatch):
    folder = tmp_path / CIFAR100.base_folder
    images, labels = _write_batches(folder, ["train", "test"], "fine_labels", 5, 100,
                                    np.random.default_rng(1))
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)
    monkeypatch.setattr(CIFAR100, "train_list", [["train", _md5(folder / "train")]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", _md5(folder / "test")]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": _md5(folder / "meta")})
    d = load_dataset("cifar100", root=tmp_path)
    assert d.n_classes == 100 and d.x_train.shape == (5, 3, 32, 32)
    assert d.y_train.tolist() == labels["train"] and d.y_test.tolist() == labels["test"]


def test_cifar_missing_folder_names_path_and_remedy(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "cifar-10-python.tar.gz" in msg


def test_cifar_damaged_file_is_named(fake_cifar10):
    root, _, _ = fake_cifar10
    path = root / CIFAR10.base_folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:-10])  # a truncated download
    with pytest.raises(RuntimeError, match="damaged: data_batch_3 .*md5.*cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=root)


@pytest.mark.parametrize("name, option, n, have", [("digits", "n_train", 100000, 1437),
                                                   ("digits", "n_test", 361, 360),
                                                   ("mnist1d", "n_train", 4001, 4000)])
def test_more_examples_than_the_data_set_holds_is_refused_naming_its_size(name, option, n, have):
    """Before: `--dataset digits --n-train 100000` trained on the 1,437 examples there are,
    while run.json recorded 100000."""
    with pytest.raises(ValueError, match=f"{option} is {n}, but {name} has {have} "):
        load_dataset(name, **{option: n})
    assert len(load_dataset(name, **{option: have}).x_train if option == "n_train"
               else load_dataset(name, **{option: have}).x_test) == have


def test_the_training_command_refuses_it_and_records_the_counts_it_used(tmp_path, capsys):
    import json

    from bea_lib.nets.train import ExitCode, main

    common = ["--dataset", "digits", "--model", "mlp", "--width", "8", "--epochs", "1",
              "--chunk-size", "512", "--device", "cpu"]
    assert main([*common, "--n-train", "100000", "--out", str(tmp_path / "a")]) == ExitCode.USAGE
    assert "n_train is 100000, but digits has 1437 training examples" in capsys.readouterr().err
    assert main([*common, "--n-test", "40", "--out", str(tmp_path / "b")]) == ExitCode.FINISHED
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    assert info["examples"] == {"train": 1437, "test": 40}  # n_train None: all of them


def test_a_generated_standin_reads_as_cifar_and_is_checked_against_its_own_checksums(tmp_path):
    from bea_lib.nets.data import STANDIN_FILE, check_local_data, write_cifar_standin

    folder = write_cifar_standin(tmp_path, 10, n_per_file=4, seed=1)
    check_local_data("cifar10", tmp_path)  # the folder is there: nothing raised
    d = load_dataset("cifar10", root=tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert (folder / STANDIN_FILE).is_file() and d.n_classes == 10
    c100 = load_dataset("cifar100", root=write_cifar_standin(tmp_path, 100, n_per_file=6).parent)
    assert c100.x_train.shape == (6, 3, 32, 32) and int(c100.y_train.max()) < 100
    (folder / "data_batch_2").write_bytes(b"altered")
    with pytest.raises(RuntimeError, match="damaged: data_batch_2"):
        load_dataset("cifar10", root=tmp_path)


def test_missing_cifar_is_one_line_naming_the_folder(tmp_path):
    from bea_lib.nets.data import check_local_data

    with pytest.raises(FileNotFoundError) as err:
        check_local_data("cifar100", tmp_path / "data")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "data" / "cifar-100-python") in msg
    check_local_data("mnist1d", tmp_path / "nowhere")  # generated sets need no folder
